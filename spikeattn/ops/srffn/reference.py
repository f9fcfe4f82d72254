"""SpikeGPT's channel-mix core as plain torch ops: the spec and the oracle of the fused op."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def naive_srffn(xk: torch.Tensor, xr: torch.Tensor, key_weight: torch.Tensor, receptance_weight: torch.Tensor,
                value_weight: torch.Tensor) -> torch.Tensor:
    """``sigmoid(xr Wr^T) * (relu(xk Wk^T)^2 Wv^T)`` (bias-free Linear layers); autograd gives the gradients."""
    hidden = torch.square(torch.relu(F.linear(xk, key_weight)))
    return torch.sigmoid(F.linear(xr, receptance_weight)) * F.linear(hidden, value_weight)
