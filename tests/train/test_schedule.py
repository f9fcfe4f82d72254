"""Warm-up + cosine multiplier, alone and driving a real optimizer."""

from __future__ import annotations

import math

import pytest
import torch

from spikeattn.train import TrainConfig, cosine_with_warmup, make_scheduler


def test_values():
    m = [cosine_with_warmup(s, total_steps=10, warmup_steps=4, min_ratio=0.1) for s in range(10)]
    assert m[:4] == [0.25, 0.5, 0.75, 1.0]
    assert m[4] == 1.0                          # first step after warm-up: full lr
    assert m[9] == pytest.approx(0.1)           # last step: lr * min_ratio
    assert m[4 + 5 // 2] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 2 / 5)))
    assert all(a >= b for a, b in zip(m[4:], m[5:]))  # monotone decay


def test_drives_optimizer():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = make_scheduler(opt, total_steps=6, warmup_steps=2)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0 and lrs[1] == 2.0 and lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_warmup_longer_than_run():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        make_scheduler(opt, total_steps=3, warmup_steps=5)


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"lr": -1.0}, {"amp": "fp8"}, {"steps": 0}, {"eval_every": -1}])
def test_config_rejects(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)
