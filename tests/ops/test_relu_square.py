"""relu(x)^2 with its one-pass backward: the values and gradients of autograd through
``torch.square(torch.relu(x))``, bit for bit (zeros, negatives and large values included)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.ops.relu_square import naive_relu_square, relu_square


@settings(max_examples=25, deadline=None, derandomize=True)
@given(shape=st.lists(st.integers(1, 33), min_size=1, max_size=3), scale=st.sampled_from([1e-3, 1.0, 1e3]),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
def test_same_bits_as_autograd(shape, scale, dtype):
    g = torch.Generator().manual_seed(len(shape) * 100 + shape[0])
    x = (torch.randn(shape, generator=g) * scale).to(dtype)
    x.view(-1)[0] = 0.0  # relu's kink: both give gradient 0 there
    grad = torch.randn(shape, generator=g).to(dtype)
    leaves = [x.clone().requires_grad_(True) for _ in range(2)]
    y, y_ref = relu_square(leaves[0]), naive_relu_square(leaves[1])
    y.backward(grad)
    y_ref.backward(grad)
    assert torch.equal(y, y_ref)
    assert torch.equal(leaves[0].grad, leaves[1].grad)
    assert (leaves[0].grad[x <= 0] == 0).all()
