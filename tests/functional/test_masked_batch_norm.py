"""masked_batch_norm = F.batch_norm on the visible values alone (outputs, running statistics, gradients)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.nn import functional as F

from spikeattn.functional import masked_batch_norm


def gathered(x, visible):
    """The visible values of ``x [N, C, *s]`` as one batch ``[V, C]`` (the oracle's input)."""
    m = visible.expand(x.shape[0], 1, *x.shape[2:]).bool()
    return x.movedim(1, -1)[m.squeeze(1)]  # (V, C)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 5), h=st.integers(2, 6), w=st.integers(2, 6),
       dtype=st.sampled_from([torch.float32, torch.float64]), momentum=st.sampled_from([0.1, 0.5, 1.0]),
       affine=st.booleans(), seed=st.integers(0, 1000))
def test_matches_batch_norm_on_the_visible_values(n, c, h, w, dtype, momentum, affine, seed):
    g = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(n, c, h, w, generator=g, dtype=dtype) + 1).requires_grad_()
    visible = (torch.rand(n, 1, h, w, generator=g) < 0.4).to(dtype)
    visible.view(-1)[:2] = 1  # at least two visible positions
    weight = torch.rand(c, generator=g, dtype=dtype).requires_grad_() if affine else None
    bias = torch.randn(c, generator=g, dtype=dtype).requires_grad_() if affine else None
    rm, rv = torch.randn(c, generator=g, dtype=dtype), torch.rand(c, generator=g, dtype=dtype) + 0.5
    rm_ref, rv_ref = rm.clone(), rv.clone()

    y = masked_batch_norm(x, visible, rm, rv, weight, bias, True, momentum, 1e-5)
    x_ref = x.detach().clone().requires_grad_()
    w_ref = None if weight is None else weight.detach().clone().requires_grad_()
    b_ref = None if bias is None else bias.detach().clone().requires_grad_()
    vis = gathered(x_ref, visible)
    y_ref = F.batch_norm(vis, rm_ref, rv_ref, w_ref, b_ref, True, momentum, 1e-5)

    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    # BN's rounding error grows as the visible values of a channel crowd together: the output
    # (x - mean) / std cancels to ~ eps |x| / std, and the input gradient is gy / std minus two
    # means of that size (V = 2 gives a gradient that is exactly 0, computed as such a difference).
    # fp32 tolerances scale with that conditioning; fp64 leaves ample room as it is.
    std = vis.detach().std(0, correction=0).min().clamp_min(1e-3)
    def scaled(size):
        return tol if dtype != torch.float32 else {k: v * (1 + float(size / std)) for k, v in tol.items()}
    torch.testing.assert_close(gathered(y, visible), y_ref, **scaled(vis.detach().abs().max()))
    torch.testing.assert_close(rm, rm_ref, **tol)
    torch.testing.assert_close(rv, rv_ref, **tol)  # unbiased variance in the running estimate, as BN
    # gradients: a loss on the visible outputs only (masked outputs are re-masked by the caller)
    gy = torch.randn_like(y_ref)
    (gathered(y, visible) * gy).sum().backward()
    (y_ref * gy).sum().backward()
    torch.testing.assert_close(gathered(x.grad, visible), gathered(x_ref.grad, visible), **scaled(gy.abs().max()))
    assert torch.all(x.grad * (1 - visible) == 0)  # masked inputs do not influence anything
    if affine:
        torch.testing.assert_close(weight.grad, w_ref.grad, **tol)
        torch.testing.assert_close(bias.grad, b_ref.grad, **tol)


def test_masked_values_do_not_change_the_statistics():
    x = torch.randn(2, 3, 4, 4)
    visible = (torch.rand(2, 1, 4, 4) < 0.5).float()
    visible[0, 0, 0, :2] = 1
    other = x + (1 - visible) * 100 * torch.randn_like(x)
    a = masked_batch_norm(x, visible, None, None, training=True)
    b = masked_batch_norm(other, visible, None, None, training=True)
    assert torch.equal(a * visible, b * visible)
    plain = F.batch_norm(x * visible, None, None, training=True)
    assert not torch.allclose(a * visible, plain * visible)  # zeros in the statistics: what it avoids


def test_all_visible_is_batch_norm_and_eval_uses_running_statistics():
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    ones = torch.ones(4, 1, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(masked_batch_norm(x, ones, None, None, training=True),
                               F.batch_norm(x, None, None, training=True))
    rm, rv = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    assert torch.equal(masked_batch_norm(x, ones * 0, rm, rv, training=False), F.batch_norm(x, rm, rv, training=False))


def test_too_few_visible_positions():
    with pytest.raises(ValueError, match="at least 2 visible"):
        masked_batch_norm(torch.randn(1, 2, 3, 3), torch.zeros(1, 1, 3, 3), None, None, training=True)
