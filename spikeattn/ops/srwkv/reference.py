"""SpikeGPT's time-mix core as plain torch ops: the spec and the oracle of the fused op."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from spikeattn.ops.wkv import wkv


def naive_srwkv(xk: torch.Tensor, xv: torch.Tensor, xr: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
                key_weight: torch.Tensor, value_weight: torch.Tensor, receptance_weight: torch.Tensor,
                output_weight: torch.Tensor, wkv_backend: str = "torch") -> torch.Tensor:
    """``Wo(sigmoid(xr Wr^T) * WKV(w, u, xk Wk^T, xv Wv^T))`` (bias-free Linear layers; ``spikeattn.ops.wkv`` on
    ``wkv_backend``); autograd gives the gradients."""
    k, v = F.linear(xk, key_weight), F.linear(xv, value_weight)
    return F.linear(torch.sigmoid(F.linear(xr, receptance_weight)) * wkv(w, u, k, v, backend=wkv_backend),
                    output_weight)
