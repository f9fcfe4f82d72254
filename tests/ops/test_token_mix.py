"""Token shift + mixes: the fused CPU op against the reference (the same output bits; gradients of x and
the mixes to fp32 rounding), on many shapes (hypothesis), thread-count independence, dispatch, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.ops import token_mix as tm
from spikeattn.ops.token_mix import token_mix
from spikeattn.ops.token_mix.reference import naive_token_mix
from tests.conftest import assert_close

needs_kernel = pytest.mark.skipif(not tm.cpu.is_available(), reason="needs g++ for the CPU kernel")


def inputs(B, T, C, M, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g, dtype=dtype)
    mixes = torch.rand(M, C, generator=g, dtype=dtype) * 1.6 - 0.3  # also outside [0, 1], as training allows
    return x, mixes


def run(fn, x, mixes, grads):
    x, mixes = x.detach().requires_grad_(True), mixes.detach().requires_grad_(True)
    outs = fn(x, mixes)
    return outs, torch.autograd.grad(outs, (x, mixes), grads)


def test_hand_computed():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # [1, 3, 2]
    mixes = torch.tensor([[1.0, 0.5], [0.0, 0.25]])
    backends = ("torch", "cpu") if tm.cpu.is_available() else ("torch",)
    for backend in backends:
        a, b = token_mix(x, mixes, backend=backend)
        assert a.tolist() == [[[1, 1], [3, 3], [5, 5]]], backend  # channel 1: (x_t + x_{t-1}) / 2
        assert b.tolist() == [[[0, 0.5], [1, 2.5], [3, 4.5]]], backend  # x_{t-1}; 0.25 x_t + 0.75 x_{t-1}


@needs_kernel
@settings(max_examples=30, deadline=None, derandomize=True)
@given(B=st.integers(1, 4), T=st.integers(1, 150), C=st.integers(1, 40), M=st.integers(1, 3))
def test_fused_matches_reference(B, T, C, M):
    x, mixes = inputs(B, T, C, M, seed=B * T * C * M)
    grads = [torch.randn(B, T, C) for _ in range(M)]
    outs, (gx, gm) = run(lambda *a: token_mix(*a, backend="cpu"), x, mixes, grads)
    ref, (gx_ref, gm_ref) = run(naive_token_mix, x, mixes, grads)
    for a, e in zip(outs, ref):
        assert torch.equal(a, e)  # the same ops in the same order: the same bits
    assert_close(gx, gx_ref, 1e-6, what="grad x")
    assert_close(gm, gm_ref, 1e-5, what="grad mixes")  # sums over B*T tokens, in another order


@needs_kernel
def test_fused_gradcheck_fp64():
    x, mixes = inputs(2, 70, 3, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *a: token_mix(*a, backend="cpu"),
                                    (x.requires_grad_(True), mixes.requires_grad_(True)))


@needs_kernel
def test_same_bits_on_any_thread_count():
    x, mixes = inputs(3, 200, 33, 3)
    grads = [torch.randn(3, 200, 33) for _ in range(3)]
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(run(lambda *a: token_mix(*a, backend="cpu"), x, mixes, grads))
    finally:
        torch.set_num_threads(threads)
    for outs, grads_ in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outs + grads_, results[0][0] + results[0][1]))


@needs_kernel
def test_opcheck():
    x, mixes = inputs(2, 5, 3, 3)
    torch.library.opcheck(torch.ops.spikeattn.token_mix.default, (x, mixes))


@needs_kernel
def test_auto_picks_the_kernel_for_fp32_only(monkeypatch):
    seen = []
    real = tm.BACKENDS["cpu"]
    monkeypatch.setitem(tm.BACKENDS, "cpu", lambda *a: seen.append(1) or real(*a))
    x, mixes = inputs(1, 3, 2, 1)
    token_mix(x, mixes)
    assert seen == [1]
    assert tm.resolve_backend("auto", x.bfloat16(), mixes.bfloat16()) == "torch"
    assert tm.resolve_backend("auto", x, mixes.double()) == "torch"


@pytest.mark.parametrize(
    "x, mixes, backend, match",
    [
        (torch.zeros(2, 3), torch.zeros(1, 3), "auto", "x must be a floating-point"),
        (torch.zeros(1, 2, 3, dtype=torch.int64), torch.zeros(1, 3), "auto", "x must be a floating-point"),
        (torch.zeros(1, 2, 3), torch.zeros(3), "auto", "mixes must be"),
        (torch.zeros(1, 2, 3), torch.zeros(1, 4), "auto", "mixes must be"),
        (torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.float64), "cpu", "mixes of x's dtype"),
        (torch.zeros(1, 2, 3), torch.zeros(1, 3), "gpu", "backend must be one of"),
    ],
)
def test_bad_input(x, mixes, backend, match):
    with pytest.raises((ValueError, TypeError), match=match):
        token_mix(x, mixes, backend=backend)
