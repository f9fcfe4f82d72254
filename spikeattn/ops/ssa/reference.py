"""The oracle: Spikformer's attention core on token-major spikes, as plain torch matmuls."""

from __future__ import annotations

import torch


def naive_ssa(qkv: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """``Q K^T V * scale`` per head: ``qkv [..., N, 3C]`` (Q | K | V) -> ``[..., N, C]``, fp32 math.

    Every product of 0/1 spikes is an integer count, exact in fp32 below 2^24.
    """
    *lead, n, c3 = qkv.shape
    c = c3 // 3
    x = qkv.float().reshape(*lead, n, 3, heads, c // heads).movedim(-3, 0).transpose(-3, -2)  # (3, ..., H, N, d)
    q, k, v = x.unbind(0)
    out = (q @ (k.transpose(-2, -1) @ v)) * scale                  # (..., H, N, d)
    return out.transpose(-3, -2).reshape(*lead, n, c)
