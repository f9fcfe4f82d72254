"""Batch augmentation for image classifiers: random shifts (pad + crop) and horizontal flips.

It runs on a whole batch on its device inside the training loop (``train(..., augment=...)``), drawing
from the global torch RNG, which every checkpoint saves: a resumed run augments exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import torch

from spikeattn._validate import check_int

__all__ = ["RandomShiftFlip"]


class RandomShiftFlip:
    """Shift each image by up to ``pad`` pixels in x and y (padding with ``fill``) and flip half of them.

    Equivalent to torchvision's ``RandomCrop(size, padding=pad, fill=fill)`` followed by
    ``RandomHorizontalFlip()``, for a ``[B, C, H, W]`` batch at once.

    Args:
        pad: largest shift in pixels (0: no shift).
        flip: flip left-right with probability 1/2.
        fill: value of the pixels shifted in; for normalised images pass the normalised background
            (Fashion-MNIST: ``-mean / std``), not 0.
    """

    def __init__(self, pad: int = 2, flip: bool = True, fill: float = 0.0):
        check_int(pad, "pad", 0)
        self.pad, self.flip, self.fill = pad, bool(flip), float(fill)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
        B, _, H, W = x.shape
        p = self.pad
        rows = torch.arange(H, device=x.device).expand(B, H)
        cols = torch.arange(W, device=x.device).expand(B, W)
        if p:
            x = torch.nn.functional.pad(x, (p, p, p, p), value=self.fill)
            rows = rows + torch.randint(0, 2 * p + 1, (B, 1), device=x.device)
            cols = cols + torch.randint(0, 2 * p + 1, (B, 1), device=x.device)
        if self.flip:
            flipped = torch.rand(B, 1, device=x.device) < 0.5
            cols = torch.where(flipped, cols.flip(1), cols)
        b = torch.arange(B, device=x.device)[:, None, None]
        # advanced indexing puts the indexed dims first: [B, H, W, C] -> [B, C, H, W]
        return x[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"RandomShiftFlip(pad={self.pad}, flip={self.flip}, fill={self.fill:g})"
