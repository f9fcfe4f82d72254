"""Trainable ``x @ W^T + b`` whose three GEMMs go through ``linear`` (oneDNN for fp32 on AVX-512 AMD CPUs).

``linear``'s oneDNN backend has no autograd formula, so a model's ``nn.Linear`` layers reach MKL
through ``F.linear`` while training. This Function calls ``linear`` in its forward and for both
backward GEMMs (autograd is not recording there, so ``auto`` may pick oneDNN): on the AMD EPYC CPU
of ``benchmarks/results/linear_cpu.json`` that is about twice MKL's speed. Results agree with
``F.linear`` to fp32 rounding (another summation order), not bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spikeattn.ops.linear import linear

__all__ = ["trainable_linear", "Linear"]


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = linear(grad_y, weight.T)                                         # (..., I)
        g2 = grad_y.reshape(-1, grad_y.shape[-1])                                     # (M, O)
        if ctx.needs_input_grad[1]:
            grad_w = linear(g2.T, x.reshape(-1, x.shape[-1]).T)                       # (O, I) = g^T x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2.sum(0)
        return grad_x, grad_w, grad_b


def trainable_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` with its forward and backward GEMMs on ``spikeattn.ops.linear``.

    Falls back to ``F.linear`` itself where ``linear`` would pick torch anyway (not fp32 on the CPU)
    and under autocast (whose casting rules live in ``F.linear``); outside autograd it is ``linear``.
    """
    if torch.is_autocast_enabled(x.device.type) or x.dtype != torch.float32 or x.device.type != "cpu":
        return F.linear(x, weight, bias)
    if not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                         or (bias is not None and bias.requires_grad))):
        return linear(x, weight, bias)
    return _Linear.apply(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state_dict keys) computed by ``trainable_linear``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return trainable_linear(x, self.weight, self.bias)
