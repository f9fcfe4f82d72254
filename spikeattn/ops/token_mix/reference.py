"""Token shift and mixes as plain torch ops: the spec and the oracle of the fused kernel."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def token_shift(x: torch.Tensor) -> torch.Tensor:
    """The previous token of every position, zeros before the first: ``[B, T, C] -> [B, T, C]``."""
    return F.pad(x, (0, 0, 1, -1))


def mix(x: torch.Tensor, xx: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``x * m + xx * (1 - m)``: RWKV's learned mix of a token and the one before it (``xx``)."""
    return x * m + xx * (1 - m)


def naive_token_mix(x: torch.Tensor, mixes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``x [B, T, C]``, ``mixes [M, C]`` -> M tensors ``mix(x, token_shift(x), mixes[i])``."""
    xx = token_shift(x)
    return tuple(mix(x, xx, m) for m in mixes.unbind(0))
