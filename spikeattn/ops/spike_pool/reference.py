"""Max-pool as torch computes it: the spec and the oracle of the fused kernel (values and gradients)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def naive_spike_pool(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """``F.max_pool2d`` on ``[N, C, H, W]``: each output is its window's first max in row-major order
    (the last NaN if any); its gradient goes to that cell, summed where windows overlap."""
    return F.max_pool2d(x, kernel_size, stride, padding)
