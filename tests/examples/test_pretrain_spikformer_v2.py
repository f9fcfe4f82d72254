"""examples/pretrain_spikformer_v2.py --quick: pretrains, fine-tunes and trains from scratch; files are usable."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from spikeattn.models import spikformer
from spikeattn.train.pretrain import init_from

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICK = ["--quick", "--threads", "1", "--no-progress"]


@pytest.fixture
def example(monkeypatch):
    """The example module; the thread count it sets is put back afterwards."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    threads = torch.get_num_threads()
    yield importlib.import_module("pretrain_spikformer_v2")
    torch.set_num_threads(threads)


def quick(example, *flags) -> dict:
    return example.run(example.parse_args(QUICK + [str(f) for f in flags]))


def test_quick_run(example, tmp_path):
    result = quick(example, "--out", tmp_path)
    assert result["labels"] == 200 and result["unlabelled_images"] == 600 and result["quick"]
    assert [d["seed"] for d in result["draws"]] == [0, 1]
    for draw in result["draws"]:
        for run in ("finetune", "scratch"):
            assert draw[run]["steps"] == 30 and draw[run]["test_acc"] > 0.15, result  # chance is 0.10
        assert abs(draw["gain_points"] - 100 * (draw["finetune"]["test_acc"] - draw["scratch"]["test_acc"])) < 1e-9
    mean_gain = sum(d["gain_points"] for d in result["draws"]) / 2
    assert abs(result["gain_points"] - mean_gain) < 1e-9
    assert result["pretrain"]["steps"] == 20 and result["pretrain"]["final_loss"] < 0.9  # ~1 for predicting 0 (standardised pixels)
    assert json.loads((tmp_path / "result.json").read_text()) == result
    png = (tmp_path / "reconstructions.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    init_from(spikformer(example.PRESET), tmp_path / "pretrain" / "pretrained.pt")  # loadable for fine-tuning


def test_holdout_keeps_the_test_set_out(example, monkeypatch, tmp_path):
    """--holdout N: pretraining and labels use the first images only; accuracy is on the last N; no record written."""
    seen = []
    real_subset = example.Subset
    monkeypatch.setattr(example, "Subset", lambda data, idx: seen.append(list(idx)) or real_subset(data, idx))
    monkeypatch.setattr(example, "RESULT", tmp_path / "must-not-be-written.json")
    result = quick(example, "--holdout", 100, "--out", tmp_path / "run")
    assert result["test_images"] == 100 and result["unlabelled_images"] == 500
    assert result["evaluated_on"].startswith("validation")
    pretrain_idx, holdout_idx, *draws = seen
    assert pretrain_idx == list(range(500)) and holdout_idx == list(range(500, 600))
    assert len(draws) == 2 and all(len(d) == 200 and max(d) < 500 for d in draws)  # labels never from the holdout
    assert not (tmp_path / "must-not-be-written.json").exists()


def test_holdout_must_leave_room_for_the_labels(example):
    with pytest.raises(ValueError, match="--holdout"):
        quick(example, "--holdout", 401)


def test_pretrained_file_is_reused_and_must_match_the_images(example, monkeypatch, tmp_path):
    """--pretrained FILE skips step 1 and fine-tunes the same bits; a file pretrained on other images is refused."""
    monkeypatch.setattr(example, "RESULT", tmp_path / "must-not-be-written.json")
    first = quick(example, "--out", tmp_path / "a", "--mask-ratio", 0.6)
    file = tmp_path / "a" / "pretrain" / "pretrained.pt"
    monkeypatch.setattr(example, "pretrain_spikformer_v2", lambda *a, **k: pytest.fail("step 1 ran despite --pretrained"))
    again = quick(example, "--out", tmp_path / "b", "--pretrained", file)
    with pytest.raises(ValueError, match="pretrained on 600 images, this run pretrains on 500"):
        quick(example, "--holdout", 100, "--pretrained", file, "--out", tmp_path / "c")
    assert [d["finetune"]["test_acc"] for d in again["draws"]] == [d["finetune"]["test_acc"] for d in first["draws"]]
    assert again["pretrain"]["steps"] == 20 and again["pretrain"]["final_loss"] == first["pretrain"]["final_loss"]
    assert again["pretrain"]["batch_size"] == 32 and again["mask_ratio"] == 0.6  # the file's, not the default
    assert not (tmp_path / "b" / "pretrain").exists() and not (tmp_path / "must-not-be-written.json").exists()


def test_head_init_probe_fits_the_head_of_both_arms(example, monkeypatch, tmp_path):
    import spikeattn.recipes.spikformer as recipe

    fitted = []
    real_fit = recipe.fit_head
    monkeypatch.setattr(recipe, "fit_head", lambda model, data: fitted.append(len(data)) or real_fit(model, data))
    result = quick(example, "--head-init", "probe", "--out", tmp_path)
    assert fitted == [200] * 4                                  # 2 draws x (fine-tuned, scratch), on the labels only
    assert result["finetune_budget"]["head_init"] == "probe"
