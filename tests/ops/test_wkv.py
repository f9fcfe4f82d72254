"""WKV: the reference against the defining equation, gradcheck, the fused CPU op against the reference
(outputs and gradients of w, u, k, v), stability for large |k| and long T, bad input."""

from __future__ import annotations

import ctypes.util
import math
import platform

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.ops import wkv as wkv_ops
from spikeattn.ops.wkv import WKVState, wkv, wkv_step
from spikeattn.ops.wkv.reference import dense_wkv, naive_wkv
from tests.conftest import assert_close

needs_cpu_kernel = pytest.mark.skipif(not wkv_ops.cpu.is_available(), reason="needs g++ for the CPU kernel")


def make_inputs(B, T, C, dtype=torch.float32, k_scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.exp(torch.randn(C, generator=g) - 1)  # decay rates spread over ~[0.05, 3]
    u = torch.randn(C, generator=g)
    k = torch.randn(B, T, C, generator=g) * k_scale
    v = torch.randn(B, T, C, generator=g)
    return tuple(x.to(dtype) for x in (w, u, k, v))


def grads(fn, inputs, gy):
    leaves = [x.detach().requires_grad_(True) for x in inputs]
    y = fn(*leaves)
    return y, torch.autograd.grad((y * gy).sum(), leaves, allow_unused=True, materialize_grads=True)


def test_hand_computed():
    # C = 1, w = ln 2 (past halves per step), u = 0, k = 0: WKV_0 = v_0; WKV_1 = (v_0 + v_1) / 2;
    # WKV_2 = (v_0 / 2 + v_1 + v_2) / (1/2 + 1 + 1).
    w, u = torch.tensor([math.log(2.0)]), torch.zeros(1)
    k, v = torch.zeros(1, 3, 1), torch.tensor([1.0, 3.0, 5.0]).view(1, 3, 1)
    expected = torch.tensor([1.0, 2.0, (0.5 + 3 + 5) / 2.5])
    for backend in ("torch", "cpu") if wkv_ops.cpu.is_available() else ("torch",):
        assert_close(wkv(w, u, k, v, backend=backend).flatten(), expected, 1e-6, what=backend)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 7, 3), (3, 33, 10)], ids=str)
def test_reference_is_the_equation(shape):
    inputs = make_inputs(*shape, dtype=torch.float64, k_scale=5.0)
    assert_close(naive_wkv(*inputs), dense_wkv(*inputs), 1e-12, what="naive vs dense")
    f32 = naive_wkv(*(x.float() for x in inputs))
    assert f32.dtype == torch.float32
    assert_close(f32, dense_wkv(*inputs), 1e-5, what="fp32 naive vs dense")


def test_reference_gradcheck_fp64():
    inputs = [x.requires_grad_(True) for x in make_inputs(2, 6, 3, dtype=torch.float64)]
    assert torch.autograd.gradcheck(naive_wkv, inputs)


@needs_cpu_kernel
def test_fused_cpu_gradcheck_fp64():
    inputs = [x.requires_grad_(True) for x in make_inputs(2, 9, 4, dtype=torch.float64, k_scale=4.0)]
    assert torch.autograd.gradcheck(lambda *a: wkv(*a, backend="cpu"), inputs)


@needs_cpu_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 5, 1), (2, 16, 7), (3, 40, 65), (2, 120, 67)], ids=str)
def test_fused_cpu_matches_reference(shape, dtype):
    inputs = make_inputs(*shape, dtype=dtype, seed=sum(shape))
    gy = torch.randn(shape).to(dtype)
    y_ref, g_ref = grads(naive_wkv, inputs, gy)
    y, g = grads(lambda *a: wkv(*a, backend="cpu"), inputs, gy)
    assert y.dtype == dtype and all(a.dtype == dtype for a in g)
    rtol = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2**-7}[dtype]
    assert_close(y, y_ref, rtol, what="y")
    for name, a, e in zip("wukv", g, g_ref):
        assert_close(a, e, 4 * rtol, what=f"grad {name}")


@needs_cpu_kernel
def test_comparison_can_fail():
    """A kernel that reads k one token late, or ignores u, would not pass the parity check."""
    w, u, k, v = make_inputs(2, 16, 7)
    y = wkv(w, u, k, v, backend="cpu")
    with pytest.raises(AssertionError):
        assert_close(y, naive_wkv(w, u, torch.roll(k, 1, dims=1), v), 2e-6)
    with pytest.raises(AssertionError):
        assert_close(y, naive_wkv(w, torch.zeros_like(u), k, v), 2e-6)


@needs_cpu_kernel
def test_auto_picks_the_kernel(monkeypatch):
    seen = []
    real = wkv_ops.BACKENDS["cpu"]
    monkeypatch.setitem(wkv_ops.BACKENDS, "cpu", lambda *a: seen.append(1) or real(*a))
    wkv(*make_inputs(1, 3, 2))
    assert seen == [1]


@needs_cpu_kernel
def test_vector_math_where_libmvec_is():
    """With g++ on x86-64 glibc the kernels' exp/log are libmvec's vector functions (the op's speed)."""
    from spikeattn.ops import _native

    gxx = "clang" not in (_native.compiler() or "")
    expected = gxx and platform.machine() == "x86_64" and ctypes.util.find_library("mvec") is not None
    assert wkv_ops.cpu.vector_math() == expected


@needs_cpu_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_vector_and_scalar_builds_agree(dtype):
    """libmvec's exp/log vs the scalar libm's: the same values to a few ulp (outputs and gradients)."""
    cpu = wkv_ops.cpu
    w, u, k, v = make_inputs(3, 50, 37, dtype=dtype, k_scale=4.0)
    gy = torch.randn(k.shape, dtype=dtype)
    out = {}
    for vm in (True, False):
        y, lse = cpu.fused_wkv_forward(w, u, k, v, vector_math=vm)
        out[vm] = (y, lse, *cpu.fused_wkv_backward(w, u, k, v, y, lse, gy, vector_math=vm))
    rtol = {torch.float32: 1e-6, torch.float64: 1e-14}[dtype]
    for name, a, e in zip(("y", "lse", "gw", "gu", "gk", "gv"), out[True], out[False]):
        assert_close(a, e, rtol, what=name)


def test_step_by_step_equals_sequence():
    w, u, k, v = make_inputs(2, 12, 5)
    state = WKVState.zeros((2, 5))
    ys = []
    for t in range(12):
        y, state = wkv_step(w, u, k[:, t], v[:, t], state)
        ys.append(y)
    assert torch.equal(torch.stack(ys, 1), naive_wkv(w, u, k, v))


@needs_cpu_kernel
def test_opcheck_and_compile():
    w, u, k, v = make_inputs(2, 5, 3)
    torch.library.opcheck(torch.ops.spikeattn.wkv_forward.default, (w, u, k, v))
    compiled = torch.compile(lambda *a: wkv(*a, backend="cpu"), backend="eager", fullgraph=True)
    assert_close(compiled(w, u, k, v), naive_wkv(w, u, k, v), 2e-6)


@settings(max_examples=25, deadline=None)
@given(
    k_scale=st.floats(0.0, 3000.0),
    k_shift=st.floats(-3000.0, 3000.0),
    log_w=st.floats(-8.0, 4.0),
    T=st.integers(1, 400),
    backend=st.sampled_from(["torch", "cpu"]),
)
def test_stable_for_large_k_and_long_t(k_scale, k_shift, log_w, T, backend):
    """The exact WKV is a convex combination of the v's: finite, and within [min v, max v]."""
    if backend == "cpu" and not wkv_ops.cpu.is_available():
        return
    g = torch.Generator().manual_seed(T)
    C = 4
    w = torch.full((C,), math.exp(log_w))
    u = torch.randn(C, generator=g) * 10
    k = (torch.randn(1, T, C, generator=g) * k_scale + k_shift).requires_grad_(True)
    v = torch.randn(1, T, C, generator=g).requires_grad_(True)
    y = wkv(w, u, k, v, backend=backend)
    assert torch.isfinite(y).all()
    lo, hi = torch.cummin(v.detach(), 1).values, torch.cummax(v.detach(), 1).values
    assert ((y >= lo - 1e-5) & (y <= hi + 1e-5)).all()
    gk, gv = torch.autograd.grad(y.sum(), (k, v))
    assert torch.isfinite(gk).all() and torch.isfinite(gv).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"k": torch.zeros(2, 3)}, "k must be"),
        ({"v": torch.zeros(1, 3, 5)}, "v must match"),
        ({"w": torch.zeros(3)}, "w must have shape"),
        ({"u": torch.zeros(1, 4)}, "u must have shape"),
        ({"k": torch.zeros(1, 3, 4, dtype=torch.int64)}, "k must be floating point"),
        ({"backend": "gpu"}, "backend must be one of"),
    ],
)
def test_bad_input(bad, match):
    args = dict(w=torch.ones(4), u=torch.zeros(4), k=torch.zeros(1, 3, 4), v=torch.zeros(1, 3, 4), backend="torch")
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=match):
        wkv(**args)


def test_cupy_without_gpu_is_a_clear_error():
    if wkv_ops.cupy.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="runs on cuda"):
        wkv(*make_inputs(1, 2, 3), backend="cupy")
