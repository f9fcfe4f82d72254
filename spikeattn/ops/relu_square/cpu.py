"""Fused CPU kernels of relu^2: ``cuda/pointwise_host.cpp`` through ctypes (fp32, fp64).

One pass forward (``y = r * r``, ``r = max(x, 0)``) and one backward (``(g * r) * 2``) with the roundings
of the torch ops they replace: the values and gradients of autograd through ``square(relu(x))``, bit for bit.
"""

from __future__ import annotations

import torch

from spikeattn.ops._pointwise_host import DTYPES, check, is_available, run

__all__ = ["DTYPES", "is_available", "fused_relu_square", "fused_relu_square_backward"]


def fused_relu_square(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)^2``; see ``reference.naive_relu_square``."""
    check("relu_square", x)
    x = x.contiguous()  # kept in a local: the C code reads its memory
    y = torch.empty_like(x)
    run("relu_square_forward", x, y)
    return y


def fused_relu_square_backward(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``dL/dx = (dL/dy * relu(x)) * 2``."""
    check("relu_square", x, grad)
    x, grad = x.contiguous(), grad.contiguous()
    gx = torch.empty_like(x)
    run("relu_square_backward", x, grad, gx)
    return gx


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::relu_square", "cpu", fused_relu_square)
torch.library.impl("spikeattn::relu_square_backward", "cpu", fused_relu_square_backward)
