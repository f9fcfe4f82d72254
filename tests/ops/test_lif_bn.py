"""Eval-mode BatchNorm + LIF in one pass (``spikeattn::bn_lif_inference``): the bits of ``F.batch_norm``
followed by the LIF loop, for every neuron setting, both of ATen's BN layouts and odd sizes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif.bn import bn_lif_inference, exact_here, reference_bn_lif
from spikeattn.ops.lif.op import LIFScalars
from tests.conftest import SURROGATES, OpNames


def test_exact_on_this_machine():
    """x86 CPUs with FMA (CI's, ours): ATen's BN is one fma per value, as the kernel's. The probe runs outside
    whatever mode the first caller is in (here one that records ops: it sees none of the probe's)."""
    exact_here.cache_clear()
    with OpNames() as ops:
        assert exact_here()
    assert ops.names == []


@settings(max_examples=60, deadline=None)
@given(t=st.integers(1, 5), lead=st.lists(st.integers(1, 4), min_size=1, max_size=2), c=st.integers(1, 70),
       tail=st.lists(st.integers(1, 9), max_size=2), mode=st.sampled_from([CHARGE_IF, CHARGE_LIF, CHARGE_PLIF]),
       v_reset=st.sampled_from([0.0, -0.2, None]), v_th=st.floats(0.2, 2.0),
       tau=st.one_of(st.sampled_from([2.0, 4.0]), st.floats(1.1, 8.0)),
       affine=st.booleans(), seed=st.integers(0, 2**16))
def test_equals_batch_norm_then_lif(t, lead, c, tail, mode, v_reset, v_th, tau, affine, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (t, *lead, c, *tail)
    bn = torch.nn.BatchNorm1d(c, affine=affine, eps=1e-5 if seed % 2 else 1e-3).eval()
    with torch.no_grad():
        bn.running_mean.normal_(generator=g)
        bn.running_var.uniform_(0.01, 4.0, generator=g)
        if affine:
            bn.weight.normal_(generator=g)
            bn.bias.normal_(0.5, 1.0, generator=g)
    decay = torch.tensor(1.0 / tau) if mode == CHARGE_PLIF else tau
    p = LIFParameters(mode, decay, v_th, v_reset, seed % 3 != 0, True, SURROGATES[seed % len(SURROGATES)])
    x = torch.randn(shape, generator=g) * 3 + 1
    with torch.no_grad():
        spikes, v = bn_lif_inference(x, bn, p, channel_dim=1 + len(lead))
        want_spikes, want_v = reference_bn_lif(x, bn, p, channel_dim=1 + len(lead))
        y = x.clone()
        spikes_, v_ = bn_lif_inference(y, bn, p, channel_dim=1 + len(lead), overwrite=True)
    assert torch.equal(spikes, want_spikes)
    assert torch.equal(v, want_v)
    # in place: the spikes are written over the input, the same bits
    assert spikes_.data_ptr() == y.data_ptr() and torch.equal(y, want_spikes) and torch.equal(v_, want_v)


@pytest.mark.parametrize("shape,dim", [((4, 8, 64, 384), 3), ((4, 8, 96, 8, 8), 2)], ids=["tokens", "maps"])
def test_model_shapes_fire_and_stay_silent(shape, dim):
    """At a Spikformer's shapes (channels last, and channels before an image), with a mixed firing rate."""
    g = torch.Generator().manual_seed(3)
    bn = torch.nn.BatchNorm1d(shape[dim]).eval()
    with torch.no_grad():
        bn.running_mean.normal_(generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
        bn.bias.fill_(0.5)
    p = LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, True, SURROGATES[1])
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        spikes, v = bn_lif_inference(x, bn, p, dim)
        want_spikes, want_v = reference_bn_lif(x, bn, p, dim)
        in_place, v_ = bn_lif_inference(x.clone(), bn, p, dim, overwrite=True)
    assert 0.05 < want_spikes.mean() < 0.95
    assert torch.equal(spikes, want_spikes) and torch.equal(v, want_v)
    assert torch.equal(in_place, want_spikes) and torch.equal(v_, want_v)


def test_overwrite_leaves_a_strided_input_alone():
    """A view that is not contiguous (the repeated frames of direct encoding) gets new spikes; the in-place op
    itself refuses it by name."""
    bn = torch.nn.BatchNorm1d(5).eval()
    p = LIFParameters(CHARGE_LIF, 2.0, 0.5, 0.0, True, True, SURROGATES[0])
    frame = torch.randn(1, 2, 5, 3, 3)
    x = frame.expand(4, 2, 5, 3, 3)
    with torch.no_grad():
        spikes, v = bn_lif_inference(x, bn, p, 2, overwrite=True)
        want_spikes, want_v = reference_bn_lif(x.contiguous(), bn, p, 2)
        assert torch.equal(spikes, want_spikes) and torch.equal(v, want_v)
        assert torch.equal(x[0], frame[0])
        with pytest.raises(ValueError, match="must be contiguous"):
            torch.ops.spikeattn.bn_lif_inference_(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, 1e-5, 2,
                                                  2.0, *LIFScalars.of(p))


def test_bad_input():
    bn = torch.nn.BatchNorm1d(4).eval()
    p = LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, True, SURROGATES[0])
    with pytest.raises(ValueError, match="channels at dim"):
        bn_lif_inference(torch.randn(2, 3, 5), bn, p, channel_dim=2)
    with pytest.raises(TypeError, match="fp32"):
        bn_lif_inference(torch.randn(2, 3, 4, dtype=torch.float64), bn, p, channel_dim=2)
    with pytest.raises(ValueError, match="running statistics"):
        bn_lif_inference(torch.randn(2, 3, 4), torch.nn.BatchNorm1d(4, track_running_stats=False).eval(), p, 2)


def test_ops_pass_opcheck():
    """Schemas (the in-place op declares its mutation), fake kernels (shapes for tracing) and the missing autograd
    formulas are consistent."""
    bn = torch.nn.BatchNorm1d(6).eval()
    p = LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, True, SURROGATES[0])
    x = torch.randn(3, 2, 6, 5)
    args = (bn.running_mean, bn.running_var, bn.weight.detach(), bn.bias.detach(), 1e-5, 2, 2.0, *LIFScalars.of(p))
    torch.library.opcheck(torch.ops.spikeattn.bn_lif_inference.default, (x, *args))
    torch.library.opcheck(torch.ops.spikeattn.bn_lif_inference_.default, (x.clone(), *args))
    torch.library.opcheck(torch.ops.spikeattn.lif_inference.default,
                          (x, torch.zeros(2, 6, 5), torch.tensor(2.0), False, *LIFScalars.of(p)))

