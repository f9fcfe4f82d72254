"""A new run refuses another run's folder (or versions it); a resumed run needs its checkpoint."""

from __future__ import annotations

import pytest

from spikeattn.recipes import check_out_dir, next_free_dir


def test_empty_or_missing_folder_is_fine(tmp_path):
    assert check_out_dir(tmp_path, resume=False) == tmp_path
    assert check_out_dir(tmp_path / "new", resume=False) == tmp_path / "new"


@pytest.mark.parametrize("name", ["metrics.jsonl", "ckpt.pt", "model.pt"])
def test_a_run_folder_is_refused(tmp_path, name):
    (tmp_path / name).write_text("x")
    with pytest.raises(FileExistsError, match=f"already holds a run \\({name}\\).*--resume.*--out"):
        check_out_dir(tmp_path, resume=False)
    assert (tmp_path / name).read_text() == "x"  # untouched


def test_resume_needs_the_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        check_out_dir(tmp_path, resume=True)
    (tmp_path / "ckpt.pt").write_text("x")
    assert check_out_dir(tmp_path, resume=True) == tmp_path


def test_versions(tmp_path):
    out = tmp_path / "demo"
    assert next_free_dir(out) == out
    for taken in (out, tmp_path / "demo-2"):
        taken.mkdir()
        (taken / "metrics.jsonl").write_text("")
    assert next_free_dir(out) == tmp_path / "demo-3"
