"""``relu(x)^2`` (SpikeGPT's channel mix, RWKV-4) with a one-pass backward.

Autograd through ``torch.square(torch.relu(x))`` runs three passes over the ``[B, T, 4C]`` hidden
activations backward (pow's ``2 * x``, the product with the gradient, relu's threshold mask). Here the
gradient is ``2 * relu(x) * g`` from the saved ``relu(x)``, one product and an in-place doubling:
the same bits (doubling is exact, and where ``x <= 0`` both give 0).
"""

from __future__ import annotations

import torch

__all__ = ["relu_square", "naive_relu_square"]


def naive_relu_square(x: torch.Tensor) -> torch.Tensor:
    """The reference: plain torch ops, autograd's backward."""
    return torch.square(torch.relu(x))


class _ReluSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        r = torch.relu(x)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, g):
        (r,) = ctx.saved_tensors
        return torch.mul(g, r).mul_(2)


def relu_square(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)^2``, any shape; the values and gradients of ``naive_relu_square``, bit for bit."""
    return _ReluSquare.apply(x)
