"""``sigmoid(r) * v`` as plain torch ops: the spec and the oracle of the fused kernel."""

from __future__ import annotations

import torch


def naive_sigmoid_gate(r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``sigmoid(r) * v`` (any shapes torch broadcasts, device, dtype); autograd gives the gradients."""
    return torch.sigmoid(r) * v
