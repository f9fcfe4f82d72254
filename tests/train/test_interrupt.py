"""A stop request (SIGINT/SIGTERM under stop_on_signals) checkpoints and raises Interrupted; resuming ends exact."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from spikeattn.train import Interrupted, StopRequest, TrainConfig, load_checkpoint, stop_on_signals, train
from tests.train.helpers import blobs, noisy_forward, tiny_model


def config(out_dir, **kw) -> TrainConfig:
    return TrainConfig(steps=12, batch_size=8, lr=2e-2, warmup_steps=3, log_every=2, out_dir=str(out_dir),
                       progress=False, **kw)


def stopping_forward(stop, at: int, send=None):
    """noisy_forward that requests a stop during training call ``at`` (``send``: by a real signal)."""
    calls = {"n": 0}

    def forward(model, x):
        if model.training:
            if calls["n"] == at:
                os.kill(os.getpid(), send) if send else stop.set()
            calls["n"] += 1
        return noisy_forward(model, x)

    return forward


@pytest.mark.parametrize("send", [None, signal.SIGINT, signal.SIGTERM], ids=["set", "SIGINT", "SIGTERM"])
def test_stop_checkpoints_then_resume_is_exact(tmp_path, send):
    data, evals = blobs(40), blobs(12, seed=7)
    ref = tiny_model(seed=0)
    train(ref, data, config(tmp_path / "ref"), evals, forward=noisy_forward)

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop, pytest.raises(Interrupted) as info:
        train(tiny_model(seed=0), data, config(tmp_path / "run"), evals, forward=stopping_forward(stop, 4, send),
              stop=stop)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers put back
    assert info.value.step == 5 and info.value.signum == send  # the step in progress finished
    assert load_checkpoint(tmp_path / "run" / "ckpt.pt")["step"] == 5
    assert not (tmp_path / "run" / "summary.json").exists()     # not a finished run

    resumed = tiny_model(seed=9)
    summary = train(resumed, data, config(tmp_path / "run", resume=True), evals, forward=noisy_forward)
    assert summary["steps"] == 12
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == (tmp_path / "ref" / "metrics.jsonl").read_text()


def test_a_request_after_the_last_step_is_ignored(tmp_path):
    stop = StopRequest()
    stop.set()  # already set: the loop still takes one step, which is the last one
    summary = train(tiny_model(), blobs(8), TrainConfig(steps=1, batch_size=8, out_dir=str(tmp_path), progress=False),
                    forward=noisy_forward, stop=stop)
    assert summary["steps"] == 1 and (tmp_path / "summary.json").is_file()
