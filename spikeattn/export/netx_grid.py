"""netx's 8-bit weight grid: one scale per layer, the rules that pick it, and a straight-through
parametrisation that keeps a torch weight on it during training (``quantize_for_netx``).

A netx layer holds integer mantissas ``m = round(w * f * s)`` with ``|m| <= 127``, where ``f`` is the
layer's fixed factor on its float weight (``1/tau`` with decay_input, ``1/window`` for a folded average
pooling) and ``s`` the per-layer scale; bias and threshold share ``s``. The float weight the file stands
for is ``m / (f * s)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["WMAX", "SCALE_RULES", "choose_scale", "round_to_grid", "NetxGrid"]

WMAX = 127          # netx's signed 8-bit weight mantissa, symmetric
SCALE_RULES = ("pow2", "full", "mse")


def choose_scale(w: np.ndarray, rule: str = "pow2") -> float:
    """The scale of ``w`` (already times its factor) under ``rule``:

    - ``"pow2"``: the largest power of two with no clipping (largest mantissa in [64, 127]); torch
      then computes with the file's numbers exactly (``quantize_for_netx``'s default).
    - ``"full"``: ``127 / max|w|``, any real number: the whole 8-bit range (up to one bit finer
      than ``pow2``; the scale is implicit in the file, so netx does not need a power of two).
    - ``"mse"``: of ``pow2``'s scale and the next two powers of two (which clip the largest weights
      to +-127 but resolve the rest 2x or 4x finer), the one with the least squared weight error.
    """
    if rule not in SCALE_RULES:
        raise ValueError(f"scale must be one of {SCALE_RULES}, got {rule!r}")
    peak = float(np.abs(w).max()) if w.size else 0.0
    if not np.isfinite(peak):
        raise ValueError("weights hold NaN or inf: no netx scale exists")
    if peak == 0:
        return 1.0
    if rule == "full":
        return WMAX / peak
    scale = float(2.0 ** np.floor(np.log2(WMAX / peak)))
    if rule == "pow2":
        return scale
    candidates = [scale * 2 ** k for k in range(3)]
    errors = [float(((round_to_grid(w, s) / s - w) ** 2).sum()) for s in candidates]
    return candidates[int(np.argmin(errors))]


def round_to_grid(w: np.ndarray, scale: float) -> np.ndarray:
    """Integer mantissas ``round(w * scale)`` clipped to +-127 (``w`` already times its factor)."""
    return np.clip(np.round(w * scale), -WMAX, WMAX).astype(np.int32)


class NetxGrid(nn.Module):
    """``torch.nn.utils.parametrize`` parametrisation: ``w -> m / (factor * scale)`` with
    ``m = clip(round(w * factor * scale), -limit, limit)`` (``limit=None``: no clipping, for biases).

    The gradient is straight-through: 1 inside the clipping range, 0 outside (where the weight has no
    effect), so fine-tuning moves the float weight that a forward pass sees rounded.
    """

    def __init__(self, factor: float, scale: float, limit: int | None = WMAX):
        super().__init__()
        if not (factor > 0 and scale > 0):
            raise ValueError(f"factor and scale must be > 0, got factor={factor!r}, scale={scale!r}")
        self.factor, self.scale, self.limit = float(factor), float(scale), limit

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        unit = self.factor * self.scale
        q = w * unit
        if self.limit is not None:
            q = q.clamp(-self.limit, self.limit)
        return (q + (q.round() - q).detach()) / unit

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}, scale={self.scale:g}, limit={self.limit}"
