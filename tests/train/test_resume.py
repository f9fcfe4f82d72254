"""A run killed after a checkpoint and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch

from spikeattn.train import TrainConfig, load_checkpoint, train
from tests.train.helpers import blobs, noisy_forward, tiny_model


class Killed(Exception):
    pass


def killing_forward(after: int):
    """noisy_forward that dies on training call number `after` (0-based), like a preempted job."""
    calls = {"n": 0}

    def forward(model, x):
        if model.training:
            if calls["n"] == after:
                raise Killed(f"killed at training call {after}")
            calls["n"] += 1
        return noisy_forward(model, x)

    return forward


def config(out_dir, **kw) -> TrainConfig:
    # 40 items / batch 8 = 5 batches per epoch: 12 steps cross two epoch boundaries
    return TrainConfig(steps=12, batch_size=8, lr=2e-2, warmup_steps=3, grad_clip=0.5, log_every=2,
                       eval_every=3, out_dir=str(out_dir), progress=False, **kw)


def lines(path):
    return [json.loads(s) for s in path.read_text().splitlines()]


def jitter(x):
    """A batch augmentation drawing from the global RNG, as RandomShiftFlip does."""
    return x + 0.2 * torch.randn_like(x)


@pytest.mark.parametrize("augment", [None, jitter], ids=["plain", "augment"])
@pytest.mark.parametrize("every,kill_at", [(4, 6), (5, 9)], ids=["mid-epoch", "epoch-end"])
def test_exact_resume(tmp_path, every, kill_at, augment):
    data, evals = blobs(40), blobs(12, seed=7)
    ref = tiny_model(seed=0)
    ref_summary = train(ref, data, config(tmp_path / "ref", checkpoint_every=every), evals, forward=noisy_forward,
                        augment=augment)

    with pytest.raises(Killed):
        train(tiny_model(seed=0), data, config(tmp_path / "run", checkpoint_every=every), evals,
              forward=killing_forward(kill_at), augment=augment)
    ckpt = load_checkpoint(tmp_path / "run" / "ckpt.pt")
    assert ckpt["step"] == (kill_at // every) * every and ckpt["step"] < 12

    resumed = tiny_model(seed=123)  # different init: everything must come from the checkpoint
    summary = train(resumed, data, config(tmp_path / "run", checkpoint_every=every, resume=True), evals,
                    forward=noisy_forward, augment=augment)
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert lines(tmp_path / "run" / "metrics.jsonl") == lines(tmp_path / "ref" / "metrics.jsonl")
    assert summary["final_eval_acc"] == ref_summary["final_eval_acc"] and summary["steps"] == 12


def test_outputs_written(tmp_path):
    summary = train(tiny_model(), blobs(40), config(tmp_path), blobs(12, seed=7), forward=noisy_forward)
    assert {p.name for p in tmp_path.iterdir()} == {"ckpt.pt", "metrics.jsonl", "summary.json", "curves.png"}
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 12
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kinds = [r["kind"] for r in lines(tmp_path / "metrics.jsonl")]
    assert kinds.count("train") == 6 and kinds.count("eval") == 4
    assert summary["final_train_loss"] < lines(tmp_path / "metrics.jsonl")[0]["loss"]  # it learned something
