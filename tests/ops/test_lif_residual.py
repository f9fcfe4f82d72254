"""``residual + LIF(x)`` in one pass (spikeattn.ops.lif.residual) against the two ops it replaces: the same
bits forward (sum and final membrane), the same gradients (the LIF's backward kernel); against the torch
reference loop, gradients to fp32 rounding; the fallbacks; bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn import surrogate as sg
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif import cpu, lif_multi_step
from spikeattn.ops.lif.residual import lif_residual, naive_lif_residual
from tests.conftest import OpNames, assert_close, grad_tolerance

needs_kernel = pytest.mark.skipif(not cpu.is_available(), reason="needs g++ for the CPU kernel")


def params(mode=CHARGE_LIF, tau=2.0, v_reset=0.0, detach_reset=False, surrogate=sg.ATan(2.0)):
    return LIFParameters(mode, tau if mode == CHARGE_LIF else 1.0, 1.0, v_reset, True, detach_reset, surrogate)


def run(fn, x, residual, w):
    """Forward + backward of a loss on both outputs; returns the sum, v and the gradients of x and residual."""
    x, residual = x.detach().requires_grad_(True), residual.detach().requires_grad_(True)
    out, v = fn(x, residual)
    loss = (out * w).sum() + (v * v).sum()
    return out, v, torch.autograd.grad(loss, (x, residual))


def two_ops(p, batch_first, backend="cpu"):
    """What the fused op replaces: the LIF op from rest, then the add."""
    def fn(x, residual):
        spikes, v = lif_multi_step(x, None, p, backend, batch_first)
        return residual + spikes, v
    return fn


@needs_kernel
@settings(max_examples=25, deadline=None, derandomize=True)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 70), st.integers(1, 40)), batch_first=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), mode=st.sampled_from([CHARGE_LIF, CHARGE_IF]),
       tau=st.sampled_from([2.0, 3.0]), v_reset=st.sampled_from([0.0, None, -0.5]), detach_reset=st.booleans(),
       surrogate=st.sampled_from([sg.ATan(2.0), sg.Sigmoid(4.0)]))
def test_fused_is_the_two_ops(shape, batch_first, dtype, mode, tau, v_reset, detach_reset, surrogate):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g, dtype=dtype) * 1.5 + 0.5  # a mixed firing rate
    residual = torch.randn(shape, generator=g, dtype=dtype) * 3
    w = torch.randn(shape, generator=g, dtype=dtype)
    p = params(mode, tau, v_reset, detach_reset, surrogate)
    out, v, grads = run(lambda a, b: lif_residual(a, b, p, "cpu", batch_first), x, residual, w)
    out2, v2, grads2 = run(two_ops(p, batch_first), x, residual, w)
    assert torch.equal(out, out2) and torch.equal(v, v2)
    assert torch.equal(grads[0], grads2[0]) and torch.equal(grads[1], grads2[1])
    ref = run(lambda a, b: naive_lif_residual(a, b, p, batch_first), x, residual, w)
    assert torch.equal(out, ref[0]) and torch.equal(v, ref[1])  # the kernels fire as the reference loop
    rtol, atol = grad_tolerance(dtype)
    assert_close(grads[0], ref[2][0], rtol, atol, what="grad x")
    assert torch.equal(grads[1], ref[2][1])  # the residual's gradient is the output's


@needs_kernel
def test_fires_and_sums_by_hand():
    x = torch.tensor([[[3.0], [0.5], [1.5], [2.0]]])  # [B=1, T=4, C=1]: h = 1.5 (fire), 0.25, 0.875, 1.4375 (fire)
    residual = torch.tensor([[[0.25], [0.25], [-1.0], [10.0]]])
    out, v = lif_residual(x, residual, params(), "cpu", batch_first=True)
    assert out.flatten().tolist() == [1.25, 0.25, -1.0, 11.0]
    assert v.flatten().tolist() == [0.0]


@needs_kernel
@pytest.mark.parametrize("grad", [True, False])
def test_ops_taken(grad):
    """Training records the fused op (with h for the backward); inference takes the variant without h."""
    x, residual = torch.randn(2, 5, 3, requires_grad=grad), torch.randn(2, 5, 3)
    with OpNames() as names:
        lif_residual(x, residual, params(), batch_first=True)
    assert names.names == ["spikeattn::lif_residual" if grad else "spikeattn::lif_residual_inference"]


@needs_kernel
def test_gradient_of_v_only_and_unused_outputs():
    x = torch.randn(2, 6, 3, requires_grad=True)
    residual = torch.randn(2, 6, 3, requires_grad=True)
    p = params()
    _, v = lif_residual(x, residual, p, "cpu", True)
    gx, gr = torch.autograd.grad(v.sum(), (x, residual), allow_unused=True)
    x2 = x.detach().requires_grad_(True)
    gx2, = torch.autograd.grad(lif_multi_step(x2, None, p, "cpu", True)[1].sum(), x2)
    assert torch.equal(gx, gx2) and gr is None


@pytest.mark.parametrize("case", ["plif", "bf16", "torch", "fp32 residual, bf16 x", "fp64 residual, fp32 x"])
def test_other_cases_run_the_two_ops(case):
    x, residual = torch.randn(2, 5, 4) + 0.5, torch.randn(2, 5, 4)
    p, backend = params(), "auto"
    if case == "plif":
        p = LIFParameters(CHARGE_PLIF, torch.tensor(0.5), 1.0, 0.0, True, False, sg.ATan(2.0))
    elif case == "bf16":
        x, residual = x.bfloat16(), residual.bfloat16()
    elif case.startswith("fp32 residual"):  # SpikeGPT under bf16 autocast: the stream stays fp32
        x = x.bfloat16()
    elif case.startswith("fp64 residual"):
        residual = residual.double()
    else:
        backend = "torch"
    with OpNames() as names:
        out, v = lif_residual(x, residual, p, backend, batch_first=True)
    assert not any(n.startswith("spikeattn::lif_residual") for n in names.names)
    expected, v_ref = two_ops(p, True, "torch")(x, residual)
    assert out.dtype == torch.promote_types(x.dtype, residual.dtype)  # the add's type promotion
    assert torch.equal(out, expected) and torch.equal(v, v_ref)


@needs_kernel
def test_opcheck():
    x, residual = torch.randn(2, 5, 3) + 0.5, torch.randn(2, 5, 3)
    args = (2.0, True, CHARGE_LIF, True, 1.0, 0.0, False, False, 0, 2.0)
    torch.library.opcheck(torch.ops.spikeattn.lif_residual.default, (x.requires_grad_(True), residual, *args))
    torch.library.opcheck(torch.ops.spikeattn.lif_residual_inference.default, (x.detach(), residual, *args))


def test_bad_input():
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="residual must be a tensor of x's shape"):
        lif_residual(x, torch.randn(2, 5, 4), params())
    with pytest.raises(ValueError, match="residual must be a tensor of x's shape"):
        lif_residual(x, x.numpy(), params())
    with pytest.raises(ValueError, match="tau must be"):
        lif_residual(x, x, params(tau=0.5))
