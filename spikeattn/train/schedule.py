"""Learning-rate schedule: linear warm-up, then cosine decay, as a LambdaLR multiplier."""

from __future__ import annotations

import math

import torch

__all__ = ["cosine_with_warmup", "make_scheduler"]


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    r"""Multiplier of the base lr for optimizer step ``step`` (0-based).

    .. math::
        m(s) = \frac{s + 1}{W} \;(s < W), \qquad
        m(s) = r + (1 - r)\,\tfrac12\bigl(1 + \cos(\pi \tfrac{s - W}{\max(1, S - W - 1)})\bigr)

    so the first post-warm-up step uses the full lr and the last step (``S - 1``) uses ``r * lr``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps - 1))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                   min_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over ``cosine_with_warmup``; call ``.step()`` once after each optimizer step."""
    if warmup_steps > total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must not exceed the total steps ({total_steps})")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total_steps, warmup_steps, min_ratio)
    )
