"""Checkpoints and model files: checksum + format version; damaged, foreign or mismatched files refused by name."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from spikeattn.train import CheckpointError, TrainConfig, load_checkpoint, save_checkpoint, train
from spikeattn.train.container import MAGIC, read_file, write_file
from spikeattn.train.model_file import load_model, save_model
from tests.train.helpers import blobs, direct_forward, tiny_model


def _trained_checkpoint(tmp_path, **kw):
    cfg = TrainConfig(steps=2, batch_size=8, lr=1e-2, out_dir=str(tmp_path), progress=False, **kw)
    train(tiny_model(), blobs(), cfg, forward=direct_forward)
    return tmp_path / "ckpt.pt"


def test_flipped_bytes_refused(tmp_path):
    """The case of the issue: 64 flipped bytes inside the weights resumed silently with a 2.4e24 weight."""
    path = _trained_checkpoint(tmp_path)
    raw = bytearray(path.read_bytes())
    assert raw.startswith(MAGIC)
    middle = len(raw) // 2
    for i in range(middle, middle + 64):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=rf"{path}: checksum mismatch"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checksum mismatch"):  # and a resume refuses it too
        _trained_checkpoint(tmp_path, resume=True)


def test_truncated_refused(tmp_path):
    path = _trained_checkpoint(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(CheckpointError, match=rf"{path}: truncated \(\d+ of \d+ payload bytes\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("content, problem", [
    (b"some notes, not a checkpoint\n", "not a spikeattn checkpoint file .it starts with"),
    (b"", r"not a spikeattn checkpoint file \(the file is empty\)"),
])
def test_foreign_file_refused(tmp_path, content, problem):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"{path}: {problem}"):
        load_checkpoint(path)


def test_plain_torch_file_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="plain torch.save zip"):
        load_model(path)


def test_other_kind_and_version_refused(tmp_path):
    path = write_file({"x": 1}, tmp_path / "m.pt", "model")
    with pytest.raises(CheckpointError, match="a spikeattn model file, not a checkpoint file"):
        load_checkpoint(path)
    raw = path.read_bytes()
    head_end = raw.index(b"\n", len(MAGIC)) + 1
    header = json.loads(raw[len(MAGIC):head_end])
    header["format_version"] = 99
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + raw[head_end:])
    with pytest.raises(CheckpointError, match="format version 99, this spikeattn reads version 1"):
        read_file(path, "model")


def test_model_file_roundtrip_and_other_config(tmp_path):
    import spikeattn as sa

    model = sa.models.spikegpt("spikegpt-demo", vocab_size=17)
    path = save_model(model, tmp_path / "model.pt", chars="abc")
    loaded, extra = load_model(path)
    assert extra == {"chars": "abc"}
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    # the same file with the config of another preset: one line naming the file, not a page of mismatches
    obj = read_file(path, "model")
    obj["model_config"]["vocab_size"] = 23
    write_file(obj, path, "model")
    with pytest.raises(CheckpointError, match=rf"{path}: made for another model config: \d+ tensors of another shape"):
        load_model(path)


def test_resume_with_other_model_refused(tmp_path):
    _trained_checkpoint(tmp_path)
    cfg = TrainConfig(steps=2, batch_size=8, lr=1e-2, out_dir=str(tmp_path), progress=False, resume=True)
    from spikeattn.neuron import LIF

    other = torch.nn.Sequential(torch.nn.Linear(6, 8), LIF(tau=2.0), torch.nn.Linear(8, 3))  # 8 hidden, not 16
    with pytest.raises(CheckpointError, match=r"made for another model config: 3 tensors of another shape \(e.g. 0.weight: file \(16, 6\) vs model \(8, 6\)\)"):
        train(other, blobs(), cfg, forward=direct_forward)


_KILLER = """
import os, signal, sys, time, torch
from pathlib import Path
from spikeattn.train import save_checkpoint
path = Path(sys.argv[1])
obj = {"w": torch.randn(4_000_000)}  # 16 MB: each save spends most of its time writing the file
for i in range(8):
    pid = os.fork()  # torch imported once; each child saves in a loop until killed
    if pid == 0:
        while True:
            save_checkpoint(obj, path)
    time.sleep(0.1 + 0.045 * i)  # different points of the save cycle
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print(sorted(p.name for p in path.parent.iterdir()), flush=True)
"""


def test_a_kill_leaves_a_whole_file_and_no_temp_after_the_next_save(tmp_path):
    """SIGKILL processes that save in a loop, at varied moments: the file left is whole; a temp name can be
    left only by a kill in the instant between linking the finished data and the rename (seen once in a CI
    run), never with partial data, and the next save removes it."""
    path = tmp_path / "ckpt.pt"
    out = subprocess.run([sys.executable, "-c", _KILLER, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    listings = out.stdout.splitlines()
    assert len(listings) == 8
    for i, listing in enumerate(listings):
        names = ast.literal_eval(listing)
        assert set(names) - {"ckpt.pt"} <= {n for n in names if re.fullmatch(r"\.ckpt\.pt\.tmp-\d+", n)}, \
            f"kill {i} left {listing}"
    for leftover in tmp_path.glob(".ckpt.pt.tmp-*"):  # complete data: linked only after the last fsync
        assert read_file(leftover, "checkpoint")["w"].numel() == 4_000_000
    assert read_file(path, "checkpoint")["w"].numel() == 4_000_000
    save_checkpoint({"w": torch.zeros(1)}, path)  # the next save sweeps temps of dead writers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_failed_save_leaves_no_temp(tmp_path, monkeypatch):
    def full_disk(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"a": torch.ones(3)}, tmp_path / "ckpt.pt")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_of_dead_process_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ckpt.pt.tmp-{dead.stdout.strip()}"
    stale.write_bytes(b"half")
    save_checkpoint({"a": torch.ones(1)}, tmp_path / "ckpt.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
