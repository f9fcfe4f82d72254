"""The oracle: the weight gradient of ``y = x @ W^T`` as one dense matmul."""

from __future__ import annotations

import torch


def naive_spike_grad_weight(grad_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``grad_W = grad_y^T @ x``: ``grad_y [M, O]`` float, ``x [M, I]`` uint8 -> ``[O, I]`` in grad_y's dtype."""
    return grad_y.T @ x.to(grad_y.dtype)
