"""Training-mode BatchNorm + LIF in one pass (``spikeattn::bn_lif_train``): the unfused modules' spikes, running
statistics and gradients bit for bit (the same ATen statistics and BN backward, the same LIF kernels), and the
torch reference's spikes with gradients within the fp32 tolerance."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif import lif_multi_step
from spikeattn.ops.lif.bn_train import bn_lif_train, exact_here, reference_bn_lif_train
from spikeattn.ops.lif.op import LIFScalars
from tests.conftest import SURROGATES, OpNames, assert_close, at_threads, grad_tolerance


def test_exact_on_this_machine():
    """The probe holds on x86 CPUs with FMA (CI's, ours) and runs outside the caller's dispatch mode."""
    exact_here.cache_clear()
    with OpNames() as ops:
        assert exact_here()
    assert ops.names == []


def _bn(c, affine, track, momentum, g, image=False):
    kind = torch.nn.BatchNorm2d if image else torch.nn.BatchNorm1d
    bn = kind(c, affine=affine, track_running_stats=track, momentum=momentum)
    with torch.no_grad():
        if track:
            bn.running_mean.normal_(generator=g)
            bn.running_var.uniform_(0.5, 2.0, generator=g)
        if affine:
            bn.weight.normal_(1.0, 0.3, generator=g)
            bn.bias.normal_(0.8, 0.3, generator=g)
    return bn


def _step(y, bn, p, dim, fused, backend="cpu"):
    """Spikes and the gradients of y, BN's weight and bias, fused or through the modules (BN, then the LIF op)."""
    y = y.detach().clone().requires_grad_(True)
    if fused:
        spikes = bn_lif_train(y, bn, p, dim)
    else:
        spikes, _ = lif_multi_step(bn(y.flatten(0, dim - 1)).reshape(y.shape), None, p, backend)
    w = torch.linspace(-1, 1, spikes.numel()).reshape(spikes.shape)
    leaves = [y] + [t for t in (bn.weight, bn.bias) if t is not None]
    return spikes, torch.autograd.grad((spikes * w).sum(), leaves)


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 4), b=st.integers(1, 3), c=st.integers(1, 40), image=st.booleans(),
       mode=st.sampled_from([CHARGE_LIF, CHARGE_IF]), tau=st.sampled_from([2.0, 2.7]),
       v_reset=st.sampled_from([0.0, None]), decay_input=st.booleans(), affine=st.booleans(),
       track=st.booleans(), momentum=st.sampled_from([0.1, None]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_equals_the_modules(t, b, c, image, mode, tau, v_reset, decay_input, affine, track, momentum, threads, seed):
    """Both of ATen's layouts (channels with an image behind them, channels last), every BN option, LIF (tau a
    power of two or not) and IF, hard and soft reset: spikes, BN state and gradients are the unfused bits."""
    g = torch.Generator().manual_seed(seed)
    shape, dim = ((t, b, c, 3, 5), 2) if image else ((t, b, 7, c), 3)
    y = torch.randn(shape, generator=g) * 2 + 0.5
    p = LIFParameters(mode, tau, 0.9, v_reset, decay_input, True, SURROGATES[seed % len(SURROGATES)])
    bns = [_bn(c, affine, track, momentum, torch.Generator().manual_seed(seed), image) for _ in range(2)]
    for _ in range(2):  # twice: the cumulative average (momentum None) counts num_batches_tracked
        fused = at_threads(threads, lambda: _step(y, bns[0], p, dim, fused=True))
        plain = at_threads(threads, lambda: _step(y, bns[1], p, dim, fused=False))
        assert torch.equal(fused[0], plain[0]), "spikes differ"
        assert all(torch.equal(u, v) for u, v in zip(fused[1], plain[1])), "gradients differ"
        assert all(torch.equal(u, v) for u, v in zip(bns[0].buffers(), bns[1].buffers())), "BN state differs"


def test_matches_the_reference_loop():
    """Against the oracle (BN module, then the torch LIF loop) at a Spikformer layer's shape and rates."""
    g = torch.Generator().manual_seed(3)
    y = torch.randn(4, 2, 16, 96, generator=g) * 2 + 0.5
    p = LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, True, SURROGATES[1])
    bns = [_bn(96, True, True, 0.1, torch.Generator().manual_seed(1)) for _ in range(2)]
    spikes, grads = _step(y, bns[0], p, 3, fused=True)
    y_ref = y.clone().requires_grad_(True)
    want = reference_bn_lif_train(y_ref, bns[1], p, 3)
    w = torch.linspace(-1, 1, want.numel()).reshape(want.shape)
    want_grads = torch.autograd.grad((want * w).sum(), [y_ref, bns[1].weight, bns[1].bias])
    assert 0.1 < spikes.mean() < 0.9 and torch.equal(spikes, want)
    for name, a, e in zip(("y", "weight", "bias"), grads, want_grads):
        assert_close(a, e, *grad_tolerance(torch.float32), what=f"grad {name}")


def test_keeps_what_the_modules_keep():
    """Saved for backward: BN's input, its batch mean and invstd, weight, and the LIF's h; no BN output."""
    y = torch.randn(3, 2, 10, 64, requires_grad=True)
    bn, p = torch.nn.BatchNorm1d(64), LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, True, SURROGATES[0])
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        bn_lif_train(y, bn, p, 3)
    assert sorted(saved) == [64, 64, 64, y.numel(), y.numel()]


def test_errors():
    bn, p = torch.nn.BatchNorm1d(4), LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, True, SURROGATES[0])
    with pytest.raises(ValueError, match="channels at dim"):
        bn_lif_train(torch.randn(2, 3, 5), bn, p, channel_dim=2)
    with pytest.raises(ValueError, match="LIF and IF"):
        bn_lif_train(torch.randn(2, 3, 4), bn, p._replace(mode=CHARGE_PLIF, decay=torch.tensor(0.5)), 2)
    with pytest.raises(ValueError, match="training mode"):
        bn_lif_train(torch.randn(2, 3, 4), torch.nn.BatchNorm1d(4).eval(), p, 2)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn_lif_train(torch.randn(1, 1, 4), bn, p, 2)
    with pytest.raises(TypeError, match="fp32"):
        bn_lif_train(torch.randn(2, 3, 4, dtype=torch.float64), bn, p, 2)


def test_op_passes_opcheck():
    """Schema, fake kernel and autograd formula are consistent."""
    p = LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, True, SURROGATES[0])
    y = torch.randn(3, 2, 6, 5, requires_grad=True)
    w, b = torch.rand(6, requires_grad=True), torch.randn(6, requires_grad=True)
    mean, var = torch.batch_norm_update_stats(y.detach().flatten(0, 1), None, None, 0.0)
    invstd = (1.0 / torch.sqrt(var.double() + 1e-5)).float()
    torch.library.opcheck(torch.ops.spikeattn.bn_lif_train.default,
                          (y, mean, invstd, w, b, 1e-5, 2, 2.0, *LIFScalars.of(p)))
