"""examples/train_spikformer.py --quick: trains above chance, and the saved file rebuilds the same model."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from spikeattn.models import spikformer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_quick_run_and_reload(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("train_spikformer")
    threads = torch.get_num_threads()
    try:
        model, result = example.main(["--quick", "--threads", "1", "--out", str(tmp_path), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    assert result["test_acc"] > 0.25, result  # 10 classes: chance is 0.10
    loaded, extra = example.load(tmp_path / "model.pt")
    assert extra["test_acc"] == result["test_acc"]
    # rebuildable by name: the preset and its overrides travel with the weights
    assert extra["preset"] == "spikformer-mini-fmnist" and extra["overrides"] == result["overrides"]
    assert loaded.config == spikformer(extra["preset"], **extra["overrides"]).config
    assert extra["recipe"]["steps"] == 60 and extra["recipe"]["train_limit"] == 640  # --quick's overrides
    x = torch.rand(3, 1, 28, 28)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_bad_override(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("train_spikformer")
    with pytest.raises(ValueError, match="key=value"):
        example.main(["--quick", "--set", "T"])



def test_quick_run_with_augmentation(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("train_spikformer")
    threads = torch.get_num_threads()
    try:
        _, result = example.main(["--quick", "--augment", "--threads", "1", "--out", str(tmp_path), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    assert result["augment"].startswith("RandomShiftFlip(pad=2, flip=True")
    assert result["test_acc"] > 0.25, result  # still learns with shifted/flipped training images
