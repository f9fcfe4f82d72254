"""spikeattn.ops.linear.autograd: a trainable Linear whose forward and both backward GEMMs go through
``linear`` (oneDNN for fp32 on the CPU) equals F.linear's forward and gradients to fp32 rounding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from spikeattn.ops import linear as lin
from spikeattn.ops.linear.autograd import Linear, trainable_linear
from tests.conftest import assert_close


def _grads(fn, x, w, b, g):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    b = None if b is None else b.clone().requires_grad_()
    y = fn(x, w, b)
    y.backward(g)
    return y, x.grad, w.grad, (None if b is None else b.grad)


@settings(max_examples=25, deadline=None)
@given(lead=st.lists(st.integers(1, 40), min_size=1, max_size=3), i=st.integers(1, 160), o=st.integers(1, 130),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_matches_f_linear_forward_and_gradients(lead, i, o, bias, seed):
    gen = torch.Generator().manual_seed(seed)
    x, w = torch.randn(*lead, i, generator=gen), torch.randn(o, i, generator=gen)
    b = torch.randn(o, generator=gen) if bias else None
    g = torch.randn(*lead, o, generator=gen)
    got, ref = _grads(trainable_linear, x, w, b, g), _grads(F.linear, x, w, b, g)
    m = 1
    for n in lead:
        m *= n
    # fp32 sums in another order: a few ulps of the largest partial sum (i terms forward, m for grad_w)
    for name, a, e, terms in zip(("y", "grad_x", "grad_w", "grad_b"), got, ref, (i, o, m, m)):
        if e is not None:
            assert_close(a, e, 1e-5, 1e-5 * terms ** 0.5, what=name)


def test_gemms_run_on_onednn_where_it_runs(monkeypatch, onednn_preferred):
    if not lin.onednn.is_available():
        pytest.skip("this torch has no oneDNN linear op")
    calls = []
    real = lin.BACKENDS["onednn"]
    monkeypatch.setitem(lin.BACKENDS, "onednn", lambda *a: calls.append(a[0].shape) or real(*a))
    x, w = torch.randn(2048, 384, requires_grad=True), torch.randn(384, 384, requires_grad=True)
    trainable_linear(x, w).sum().backward()
    assert calls == [(2048, 384), (2048, 384), (384, 2048)]  # forward, grad_x, grad_w (= g^T x)


def test_falls_back_to_f_linear_where_linear_would_not_run():
    x, w = torch.randn(5, 7, dtype=torch.float64, requires_grad=True), torch.randn(3, 7, dtype=torch.float64)
    assert torch.equal(trainable_linear(x, w), F.linear(x, w))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = trainable_linear(torch.randn(4, 8), torch.randn(2, 8))
    assert y.dtype == torch.bfloat16  # autocast's rules (in F.linear) still apply


def test_module_is_an_nn_linear_with_its_parameters():
    ref = nn.Linear(16, 8)
    mine = Linear(16, 8)
    mine.load_state_dict(ref.state_dict())
    assert isinstance(mine, nn.Linear) and set(mine.state_dict()) == {"weight", "bias"}
    x = torch.randn(3, 5, 16)
    assert_close(mine(x), ref(x), 1e-6, 1e-6)
    with pytest.raises(ValueError, match="do not match"):
        mine(torch.randn(3, 15))
