"""SPS/SCS convs fed with spikes run as ``spike_conv2d`` in fp32 CPU training: the same output bits and
BN statistics as the plain Conv2d path, weight gradients within fp32 tolerance, the same state_dict and
repr; the first (image) conv and eval mode keep Conv2d."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spikeattn.layers import SCS, SPS, embed
from spikeattn.ops.spike_conv import cpu
from tests.conftest import assert_close


def _pair(stem: nn.Module):
    for m in stem.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.bias, 0.5)  # firing in every stage, so the comparison means something
    ref = copy.deepcopy(stem)
    for m in ref.modules():
        if isinstance(m, embed.ConvBNLIF):
            m.spike_input = False  # the plain Conv2d path everywhere
    return stem, ref


@pytest.fixture
def spy(monkeypatch):
    """Count spike_conv2d calls by input channels; the gather kernel at any density (no dense fallback)."""
    calls = []
    real = embed.spike_conv2d

    def counted(x, *args):
        calls.append(x.shape[1])
        return real(x, *args)

    monkeypatch.setattr(embed, "spike_conv2d", counted)
    monkeypatch.setattr(cpu, "max_fraction", lambda: 1.0)
    return calls


STEMS = {  # stem, keep mask, input channels of the spike-fed convs: stages 1-3, extras, rpe
    "sps": (lambda: SPS(3, 32, 12, (2, 3)), None, [4, 8, 16] + [32]),  # stages 1-3, then rpe
    "scs": (lambda: SCS(3, 32, 12, (1, 2), (1, 0, 1, 2)), None, [4, 8, 16] + [4, 16, 32, 32] + [32]),
    "scs-masked": (lambda: SCS(3, 32, 12, (1, 2), (1, 0, 1, 1)), torch.rand(2, 3, 3) < 0.6, [4, 8, 16] + [4, 16, 32] + [32]),
}


@pytest.mark.parametrize("name", list(STEMS))
def test_same_bits_and_gradients_as_conv2d(name, spy):
    make, keep, channels = STEMS[name]
    torch.manual_seed(0)
    stem, ref = _pair(make())
    x = torch.rand(3, 2, 3, 12, 12)
    args = () if keep is None else (keep,)
    y, y_ref = stem(x, *args), ref(x, *args)
    assert sorted(spy) == sorted(channels)  # every spike-fed conv, never the image conv (3 channels)
    assert torch.equal(y, y_ref) and y.sum() > 0
    for a, b in zip(stem.buffers(), ref.buffers()):
        assert torch.equal(a, b)  # BN running statistics
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    for (n, p), p_ref in zip(stem.named_parameters(), ref.parameters()):
        assert_close(p.grad, p_ref.grad, 1e-5, 1e-6, what=n)


def test_eval_and_no_grad_keep_conv2d(spy):
    stem = SPS(3, 32, 12, (2, 3))
    with torch.no_grad():
        stem(torch.rand(2, 1, 3, 12, 12))
    stem.eval()
    stem(torch.rand(2, 1, 3, 12, 12))
    assert spy == []


def test_state_dict_and_repr_unchanged():
    stem = SPS(3, 32, 12, (2, 3))
    _, ref = _pair(copy.deepcopy(stem))
    assert [m.spike_input for m in (*stem.stages, stem.rpe)] == [False, True, True, True, True]
    assert list(stem.state_dict()) == list(ref.state_dict()) and repr(stem) == repr(ref)
    assert "spike_input" not in repr(stem)
