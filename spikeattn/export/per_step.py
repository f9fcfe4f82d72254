"""``PerStep``: apply stateless layers (Conv2d, BatchNorm, pooling, Flatten) to every time step."""

from __future__ import annotations

import torch
from torch import nn


class PerStep(nn.Sequential):
    """Runs its layers on ``[T*B, ...]`` and gives back ``[T, B, ...]``.

    The exportable pattern is a top-level ``nn.Sequential`` of neurons (LIF/IF/PLIF, step mode
    'm'), ``nn.Linear`` (works on ``[T, B, in]`` as is) and ``PerStep(...)`` blocks that hold the
    per-frame layers, e.g. ``PerStep(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8))``.

    Example:
        >>> net = nn.Sequential(PerStep(nn.Conv2d(1, 4, 3), nn.Flatten()), nn.Linear(4 * 26 * 26, 10), LIF())
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise ValueError(f"PerStep input must be [T, B, ...], got shape {tuple(x.shape)}")
        t, b = x.shape[:2]
        y = super().forward(x.flatten(0, 1))   # (T*B, ...)
        return y.reshape(t, b, *y.shape[1:])   # (T, B, ...)
