"""Spiking MLP, encoder block, SPS stem and the per-frame / linear helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeattn.layers import SPS, LinearBN, NeuronSpec, PerFrame, SpikformerBlock, SpikingMLP
from spikeattn.ops.spike_linear import compact_spikes, spike_linear
from tests.conftest import assert_close
from tests.layers.helpers import active_batch, assert_all_params_have_grad

BACKENDS = ["cpu", "torch"]


def backward_random(out, seed=3):
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)).sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_mlp_shapes_grads(dtype, backend):
    m = SpikingMLP(16, 24, neuron=NeuronSpec(backend=backend)).to(dtype)
    x = active_batch(m, (2, 2, 8, 16)).to(dtype)
    y = m(x)
    assert y.shape == (2, 2, 8, 16) and y.dtype == dtype and set(y.unique().tolist()) <= {0.0, 1.0}
    backward_random(y)
    assert_all_params_have_grad(m)
    assert m.fc1.linear.out_features == 24 and SpikingMLP(16).hidden == 64


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_block_residuals_and_grads(attention, backend):
    m = SpikformerBlock(32, 4, attention=attention, neuron=NeuronSpec(backend=backend))
    x = active_batch(m, (2, 2, 16, 32))
    y = m(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    # two spike residuals on top of a 0/1 input: integers 0..3
    assert set(y.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0} and y.max() >= 2
    assert torch.all(y >= x)
    backward_random(y)
    assert_all_params_have_grad(m)


def test_block_rejects_unknown_attention():
    with pytest.raises(ValueError, match="attention"):
        SpikformerBlock(16, 2, attention="softmax")


@pytest.mark.parametrize("img,pools,grid", [(28, (1, 2), (7, 7)), (32, (2, 3), (8, 8)), (16, (0, 1, 2, 3), (1, 1)),
                                            ((12, 20), (0,), (6, 10)), (7, (0,), (4, 4))], ids=str)
def test_sps_grid(img, pools, grid):
    sps = SPS(2, 16, img, pools)
    size = (img, img) if isinstance(img, int) else img
    y = sps(torch.rand(2, 2, 2, *size))
    assert sps.grid == grid and y.shape == (2, 2, grid[0] * grid[1], 16)
    assert set(y.unique().tolist()) <= {0.0, 1.0, 2.0}  # spikes plus the position branch's spikes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sps_grads_reach_every_parameter(dtype, backend):
    sps = SPS(1, 16, 8, (2, 3), neuron=NeuronSpec(backend=backend)).to(dtype)
    for m in sps.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.bias, 1.0)  # make every stage fire (see tests.layers.helpers)
    x = torch.rand(2, 2, 1, 8, 8, dtype=dtype)
    y = sps(x)
    assert y.dtype == dtype
    backward_random(y)
    assert_all_params_have_grad(sps)


def test_sps_param_layout():
    sps = SPS(3, 384, 32)
    widths = [s.conv[0].out_channels for s in sps.stages]
    assert widths == [48, 96, 192, 384]
    assert all(s.conv[0].bias is None and s.conv[0].kernel_size == (3, 3) for s in sps.stages)


def test_sps_errors():
    with pytest.raises(ValueError, match="multiple of 8"):
        SPS(1, 12, 28)
    with pytest.raises(ValueError, match="pool_stages"):
        SPS(1, 16, 28, (4,))
    with pytest.raises(ValueError, match="pool_stages"):
        SPS(1, 16, 28, (1, 1))
    sps = SPS(1, 16, 28)
    with pytest.raises(ValueError, match=r"\[T, B, 1, 28, 28\]"):
        sps(torch.rand(2, 2, 1, 32, 32))
    with pytest.raises(ValueError, match="in_channels"):
        sps(torch.rand(2, 1, 28, 28))


def test_per_frame_folds_time_into_batch():
    bn = nn.BatchNorm2d(3)
    x = torch.randn(4, 2, 3, 5, 5)
    y = PerFrame(bn)(x)
    assert y.shape == x.shape
    ref = (x - x.mean(dim=(0, 1, 3, 4), keepdim=True)) / torch.sqrt(x.var(dim=(0, 1, 3, 4), unbiased=False, keepdim=True) + bn.eps)
    assert_close(y, ref, rtol=1e-5, atol=1e-6, what="BN over T*B")


def test_linear_bn_normalises_over_all_tokens():
    m = LinearBN(4, 6)
    y = m(torch.randn(3, 2, 5, 4))
    assert y.shape == (3, 2, 5, 6)
    assert_close(y.mean(dim=(0, 1, 2)), torch.zeros(6), rtol=0, atol=1e-5, what="mean")


@pytest.mark.parametrize("is_spikes", [False, True])
def test_spike_linear_matches_linear_and_saves_one_byte(is_spikes):
    x = (torch.rand(2, 3, 5, 8) < 0.4).float().requires_grad_()
    lin = nn.Linear(8, 4)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t):
        y = spike_linear(x, lin.weight, lin.bias, is_spikes)
    g = torch.randn(y.shape)
    grads = torch.autograd.grad((y * g).sum(), (x, lin.weight, lin.bias))
    ref = nn.functional.linear(x, lin.weight, lin.bias)
    grads_ref = torch.autograd.grad((ref * g).sum(), (x, lin.weight, lin.bias))
    assert torch.equal(y, ref)
    for a, b in zip(grads, grads_ref):
        assert_close(a, b, rtol=1e-5, atol=1e-6, what="grad")
    assert torch.uint8 in saved and x.dtype not in saved[:1]


def test_compact_spikes_only_for_small_integers():
    assert compact_spikes(torch.tensor([0.0, 1.0, 2.0])).dtype == torch.uint8
    for bad in ([0.5, 1.0], [-1.0, 0.0], [256.0], [float("nan")]):
        assert compact_spikes(torch.tensor(bad)) is None
