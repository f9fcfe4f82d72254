"""Loop options: AMP, early stop on time, non-classification losses, spiking state reset, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from spikeattn.neuron import LIF
from spikeattn.train import TrainConfig, train
from tests.train.helpers import blobs, direct_forward, tiny_model


def cfg(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(**{"steps": 4, "batch_size": 8, "out_dir": str(tmp_path), "progress": False, **kw})


def test_bf16_autocast_on_cpu(tmp_path):
    summary = train(tiny_model(), blobs(), cfg(tmp_path, amp="bf16"), blobs(12, seed=7), forward=direct_forward)
    assert math.isfinite(summary["final_train_loss"]) and math.isfinite(summary["final_eval_loss"])


def test_fp16_needs_cuda(tmp_path):
    with pytest.raises(ValueError, match="fp16"):
        train(tiny_model(), blobs(), cfg(tmp_path, amp="fp16", device="cpu"), forward=direct_forward)


def test_time_budget_stops_early(tmp_path):
    summary = train(tiny_model(), blobs(), cfg(tmp_path, steps=50, max_minutes=0.0), forward=direct_forward)
    assert summary["stopped_early"] and summary["steps"] == 1 and summary["total_steps"] == 50
    assert (tmp_path / "ckpt.pt").exists()  # an early stop still leaves a checkpoint to resume from


def test_regression_loss_has_no_accuracy(tmp_path):
    x = torch.randn(16, 6)
    data = TensorDataset(x, x.sum(1, keepdim=True))
    model = torch.nn.Linear(6, 1)
    summary = train(model, data, cfg(tmp_path, lr=0.05, log_every=1), data, loss_fn=F.mse_loss)
    rows = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("acc" not in r for r in rows) and summary["final_eval_acc"] is None
    assert rows[-2]["loss"] < rows[0]["loss"]


def test_membrane_reset_before_every_forward(tmp_path):
    seen = []

    def forward(model, x):
        lif = model[1]
        seen.append(lif.v is None)  # the trainer must have cleared the state left by the last batch
        return direct_forward(model, x)

    train(tiny_model(), blobs(), cfg(tmp_path), blobs(12, seed=7), forward=forward)
    assert len(seen) >= 5 and all(seen)
    assert isinstance(tiny_model()[1], LIF)


def test_dataset_smaller_than_a_batch(tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(tiny_model(), blobs(4), cfg(tmp_path), forward=direct_forward)


def test_augment_applies_to_training_batches_only(tmp_path):
    data, evals = blobs(), blobs(12, seed=7)
    raw = {tuple(x.tolist()) for x, _ in data} | {tuple(x.tolist()) for x, _ in evals}
    seen = {"train": [], "eval": []}

    def forward(model, x):
        seen["train" if model.training else "eval"] += [tuple(r.tolist()) in raw for r in x]
        return direct_forward(model, x)

    train(tiny_model(), data, cfg(tmp_path), evals, forward=forward, augment=lambda x: x + 1.0)
    assert len(seen["train"]) == 32 and not any(seen["train"])  # 4 steps x 8, every one augmented
    assert len(seen["eval"]) == 12 and all(seen["eval"])
