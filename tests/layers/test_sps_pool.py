"""The stems' max-pools on the fused spike pool (``ops.spike_pool``) against the torch backend: SPS and a
masked SCS give the same tokens and the same parameter gradients, bit for bit; the pool module's
state_dict and repr are unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeattn as sa
from spikeattn.layers import SCS, SPS
from spikeattn.ops import spike_pool as sp

needs_kernel = pytest.mark.skipif(not sp.cpu.is_available(), reason="needs g++ for the CPU kernel")


def _firing(stem: nn.Module) -> nn.Module:
    for m in stem.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.bias, 0.5)  # spikes in every stage, so the pools see ties and overlaps
    return stem


def _run(stem, x, keep=None):
    """Tokens and every parameter's gradient of a training step; then the eval tokens under no_grad."""
    stem.zero_grad()
    stem.train()
    y = stem(x) if keep is None else stem(x, keep)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()  # distinct output gradients
    grads = [p.grad.clone() for p in stem.parameters()]
    stem.eval()
    with torch.no_grad():
        y_eval = stem(x) if keep is None else stem(x, keep)
    return y.detach(), grads, y_eval


def _fused_vs_torch(stem, *inputs):
    calls = []
    fused = sp.BACKENDS["cpu"]
    state = {k: v.clone() for k, v in stem.state_dict().items()}  # BN running stats move in train mode
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sp.BACKENDS, "cpu", lambda *a: calls.append(1) or fused(*a))
        got = _run(stem, *inputs)
        assert calls, "the fused pool did not run"
        stem.load_state_dict(state)
        mp.setitem(sp.BACKENDS, "cpu", sp.BACKENDS["torch"])  # auto -> "cpu" now runs F.max_pool2d
        expected = _run(stem, *inputs)
    assert torch.equal(got[0], expected[0])
    assert 0 < expected[0].mean() < 2  # neurons fire and stay silent somewhere
    for (name, _), g, e in zip(stem.named_parameters(), got[1], expected[1]):
        assert torch.equal(g, e), name
    assert torch.equal(got[2], expected[2])


@needs_kernel
@pytest.mark.parametrize("t, b, img, pools", [(2, 2, 11, (2, 3)), (1, 2, 13, (0, 1, 2, 3)), (3, 1, 8, (1,))],
                         ids=["cifar-pools-odd", "every-stage", "one-pool"])
def test_sps_same_tokens_and_gradients(t, b, img, pools):
    sps = _firing(SPS(3, 16, img, pools))
    sa.reset(sps)
    _fused_vs_torch(sps, torch.rand(t, b, 3, img, img))


@needs_kernel
def test_masked_scs_same_tokens_and_gradients():
    scs = _firing(SCS(2, 16, 16, (0, 1), extra_convs=(1, 0, 1, 1)))
    keep = torch.rand(2, 4, 4) < 0.5
    _fused_vs_torch(scs, torch.rand(2, 2, 2, 16, 16), keep)


def test_pool_module_keeps_its_state_dict_and_repr():
    stage = SPS(3, 16, 8, (2, 3)).stages[2]
    assert repr(stage.pool) == ("PerFrame(\n  (0): MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, "
                                "ceil_mode=False)\n)")
    assert list(stage.pool.state_dict()) == []
