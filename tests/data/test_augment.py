"""RandomShiftFlip: every output is the input shifted by at most `pad` (fill shifted in) and maybe flipped."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from spikeattn.data import RandomShiftFlip


def shifted(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """x [C, H, W] moved by (dy, dx) pixels, the slow obvious way."""
    C, H, W = x.shape
    out = torch.full_like(x, fill)
    for i in range(H):
        for j in range(W):
            if 0 <= i - dy < H and 0 <= j - dx < W:
                out[:, i, j] = x[:, i - dy, j - dx]
    return out


def candidates(x, pad, flip, fill):
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            s = shifted(x, dy, dx, fill)
            yield (dy, dx, False), s
            if flip:
                yield (dy, dx, True), s.flip(-1)


@settings(max_examples=25, deadline=None)
@given(pad=st.integers(0, 3), flip=st.booleans(), fill=st.sampled_from([0.0, -0.81]),
       B=st.integers(1, 6), C=st.integers(1, 3), H=st.integers(4, 9), W=st.integers(4, 9), seed=st.integers(0, 99))
def test_each_image_is_a_shift_and_maybe_a_flip_of_its_input(pad, flip, fill, B, C, H, W, seed):
    torch.manual_seed(seed)
    x = torch.randn(B, C, H, W)
    y = RandomShiftFlip(pad, flip, fill)(x)
    assert y.shape == x.shape and y.dtype == x.dtype and y.is_contiguous()
    for b in range(B):
        assert any(torch.equal(y[b], c) for _, c in candidates(x[b], pad, flip, fill)), f"image {b}"


def test_draws_every_shift_and_both_flips():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 6, 6).expand(400, 1, 6, 6)
    y = RandomShiftFlip(pad=1, flip=True, fill=5.0)(x)
    seen = {next(k for k, c in candidates(x[0], 1, True, 5.0) if torch.equal(y[b], c)) for b in range(400)}
    assert len(seen) == 18  # 3 x 3 shifts x {kept, flipped}: uniform draws leave none out in 400


def test_identity_without_shift_or_flip():
    x = torch.randn(3, 2, 5, 7)
    assert torch.equal(RandomShiftFlip(pad=0, flip=False)(x), x)


def test_reproducible_from_the_global_rng():
    x = torch.randn(16, 1, 8, 8)
    torch.manual_seed(3)
    a = RandomShiftFlip()(x)
    torch.manual_seed(3)
    assert torch.equal(RandomShiftFlip()(x), a)


def test_bad_input():
    with pytest.raises(ValueError, match="pad must be"):
        RandomShiftFlip(pad=-1)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        RandomShiftFlip()(torch.zeros(1, 28, 28))
