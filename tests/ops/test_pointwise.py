"""relu(x)^2 and sigmoid(r) * v with their one-pass kernels: the values and gradients of autograd
through the plain torch ops, bit for bit (zeros, negatives, NaN, large values; fp32, fp64), the torch
fallback for other dtypes and layouts, and that the kernels actually ran."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.ops import pointwise
from spikeattn.ops.pointwise import naive_relu_square, naive_sigmoid_gate, relu_square, sigmoid_gate

needs_kernel = pytest.mark.skipif(not pointwise.is_available(), reason="needs g++ for the CPU kernel")
CASES = {"relu_square": (relu_square, naive_relu_square, 1), "sigmoid_gate": (sigmoid_gate, naive_sigmoid_gate, 2)}


def both(name, inputs, grad):
    """(outputs, input grads) of the fast function and of the reference on copies of ``inputs``."""
    fast, ref, _ = CASES[name]
    results = []
    for fn in (fast, ref):
        leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
        y = fn(*leaves)
        y.backward(grad)
        results.append((y.detach(), [x.grad for x in leaves]))
    return results


@settings(max_examples=30, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(CASES)),  # up to 8 * 40 * 400 elements: many above MIN_FUSED_NUMEL
       shape=st.tuples(st.integers(1, 8), st.integers(1, 40), st.integers(1, 400)),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
def test_same_bits_as_autograd(name, shape, scale, dtype):
    g = torch.Generator().manual_seed(len(shape) * 100 + shape[0])
    inputs = [(torch.randn(shape, generator=g) * scale).to(dtype) for _ in range(CASES[name][2])]
    inputs[0].view(-1)[0] = 0.0  # relu's kink
    if inputs[0].numel() > 1:
        inputs[0].view(-1)[1] = float("nan")
    grad = torch.randn(shape, generator=g).to(dtype)
    (y, grads), (y_ref, grads_ref) = both(name, inputs, grad)
    assert torch.equal(y.nan_to_num(7.0), y_ref.nan_to_num(7.0))
    for a, e in zip(grads, grads_ref):
        assert torch.equal(a.nan_to_num(7.0), e.nan_to_num(7.0))


@needs_kernel
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_run_for_fp32_contiguous_only(name, monkeypatch):
    ran = []
    real = pointwise._run
    monkeypatch.setattr(pointwise, "_run", lambda kind, *a: ran.append(kind) or real(kind, *a))
    fast, _, n = CASES[name]
    xs = [torch.randn(64, 300, requires_grad=True) for _ in range(n)]  # >= MIN_FUSED_NUMEL
    fast(*xs).sum().backward()
    assert ran == (["relu_square_forward", "relu_square_backward"] if n == 1 else ["sigmoid_gate_backward"])
    ran.clear()
    fast(*(x.detach().t() for x in xs))  # not contiguous: the torch ops
    fast(*(x.detach().bfloat16() for x in xs))
    fast(*(x.detach()[:2] for x in xs))  # small: the torch ops
    assert ran == []
