"""SpikeGPT's time-mix core (``spikeattn.ops.srwkv``): the fused CPU op against the separate ops (values and
gradients bit for bit with WKV's CPU kernel; to fp32 rounding against the WKV torch loop), the buffers
written in place, ``auto``, the registered ops and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.ops import srwkv as tm
from spikeattn.ops.srwkv import naive_srwkv, srwkv
from tests.conftest import OpNames, assert_close
from tests.ops.test_srffn import NewTensors

needs_kernel = pytest.mark.skipif(not tm.cpu.is_available(), reason="needs g++ for the CPU kernels")
NAMES = ("xk", "xv", "xr", "w", "u", "key_weight", "value_weight", "receptance_weight", "output_weight")


def inputs(B, T, C, A, O, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(B, T, C, generator=g, dtype=dtype) for _ in range(3)]
    w = torch.rand(A, generator=g, dtype=dtype) * 2 + 0.05  # decay rates > 0
    u = torch.randn(A, generator=g, dtype=dtype)
    weights = [torch.randn(A, C, generator=g, dtype=dtype) / C ** 0.5 for _ in range(3)]
    weights.append(torch.randn(O, A, generator=g, dtype=dtype) / A ** 0.5)
    return [*xs, w, u, *weights], torch.randn(B, T, O, generator=g, dtype=dtype)


def run(fn, tensors, grad):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, grad, allow_unused=True)
    # the WKV loop leaves w without a gradient at T = 1 (nothing decays); the kernel gives 0
    return out, [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


@needs_kernel
@settings(max_examples=25, deadline=None, derandomize=True)
@given(B=st.integers(1, 4), T=st.integers(1, 70), C=st.integers(1, 30), A=st.integers(1, 30), O=st.integers(1, 30),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_fused_has_the_bits_of_the_separate_ops(B, T, C, A, O, dtype):
    tensors, grad = inputs(B, T, C, A, O, dtype, seed=B * T + C * A + O)
    out, grads = run(lambda *t: srwkv(*t, backend="cpu"), tensors, grad)
    ref, ref_grads = run(lambda *t: naive_srwkv(*t, wkv_backend="cpu"), tensors, grad)
    assert out.shape == (B, T, O) and torch.equal(out, ref)
    # With a dimension of 1 a matrix is both row- and column-major and autograd may pick the other layout
    # for a gradient GEMM (another order of the same sums): fp rounding there, bit for bit elsewhere.
    degenerate = 1 in (B * T, C, A, O)
    for name, a, e in zip(NAMES, grads, ref_grads):
        if degenerate:
            assert_close(a, e, 1e-5 if dtype == torch.float32 else 1e-12, 0.0, what=name)
        else:
            assert torch.equal(a, e), name
    # the WKV torch loop (the oracle): libmvec's exp/log round differently in the last bits
    loop, loop_grads = run(naive_srwkv, tensors, grad)
    assert_close(out, loop, 1e-5 if dtype == torch.float32 else 1e-12, 0.0, what="out")
    for name, a, e in zip(NAMES, grads, loop_grads):
        assert_close(a, e, 1e-4 if dtype == torch.float32 else 1e-10, 0.0, what=name)


@needs_kernel
def test_gate_and_wkv_gradients_written_in_place():
    """sigmoid over the receptance GEMM's output; backward dL/dr over dL/d(gated) and dL/dv over dL/dy: three
    [tokens, A] buffers fewer than autograd through the separate ops makes."""
    tensors, grad = inputs(3, 7, 6, 10, 5)

    def tokens_by_a(seen):
        return sum(s[-1] == 10 and math.prod(s[:-1]) == 21 for s in seen.shapes)

    with NewTensors() as fwd:
        out, *saved = tm.cpu.fused_srwkv(*tensors)
    with NewTensors() as bwd:
        tm.cpu.fused_srwkv_backward(grad, *tensors, *saved)
    assert tokens_by_a(fwd) == 6  # k, v, r (then s in place), WKV's y and lse, s * y
    assert tokens_by_a(bwd) == 3  # dL/d(gated) (then dL/dr), dL/dy (then dL/dv), dL/dk
    leaves = [t.detach().requires_grad_(True) for t in tensors]
    with NewTensors() as ref:
        out = naive_srwkv(*leaves, wkv_backend="cpu")
    with NewTensors() as ref_bwd:
        out.backward(grad)
    assert tokens_by_a(ref) == 7  # + s
    assert tokens_by_a(ref_bwd) >= 5  # + dL/dr, dL/dv


@needs_kernel
def test_auto_takes_the_op_for_large_fp32_and_fp64_only():
    big, _ = inputs(2, 64, 128, 8, 8)  # 16384 elements in xk: MIN_FUSED_NUMEL
    small, _ = inputs(2, 3, 8, 8, 8)
    for tensors, dtype, expected in ((big, torch.float32, True), (big, torch.float64, True),
                                     (small, torch.float32, False), (big, torch.bfloat16, False)):
        with OpNames() as names:
            srwkv(*(t.to(dtype) for t in tensors))
        assert ("spikeattn::srwkv" in names.names) == expected, (dtype, tensors[0].shape)


@needs_kernel
def test_opcheck():
    tensors, grad = inputs(2, 5, 4, 6, 3)
    torch.library.opcheck(torch.ops.spikeattn.srwkv.default, tuple(t.requires_grad_(True) for t in tensors))
    out, *saved = torch.ops.spikeattn.srwkv(*tensors)
    torch.library.opcheck(torch.ops.spikeattn.srwkv_backward.default,
                          (grad, *(t.detach() for t in tensors), *(t.detach() for t in saved)))


def test_bad_input():
    tensors, _ = inputs(2, 3, 4, 6, 5)
    with pytest.raises(TypeError, match="w must be a floating-point"):
        srwkv(*tensors[:3], tensors[3].long(), *tensors[4:])
    if tm.cpu.is_available():
        bad = list(tensors)
        bad[5] = bad[5].t()  # key_weight [C, A]
        with pytest.raises(ValueError, match="key_weight"):
            srwkv(*bad, backend="cpu")
        with pytest.raises(TypeError, match="float32 or float64 tensors of one dtype"):
            srwkv(*tensors[:8], tensors[8].double(), backend="cpu")
