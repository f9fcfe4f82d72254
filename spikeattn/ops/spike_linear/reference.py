"""The oracles: the Linear as ``F.linear`` and its weight gradient as one dense matmul."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def naive_spike_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x [..., I] @ weight[O, I]^T + bias[O]`` -> ``[..., O]``, autograd by torch."""
    return F.linear(x, weight, bias)


def naive_spike_grad_weight(grad_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``grad_W = grad_y^T @ x``: ``grad_y [M, O]`` float, ``x [M, I]`` uint8 -> ``[O, I]`` in grad_y's dtype."""
    return grad_y.T @ x.to(grad_y.dtype)
