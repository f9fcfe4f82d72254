"""Fused CPU kernel of the sigmoid gate's backward: ``cuda/pointwise_host.cpp`` through ctypes (fp32, fp64).

The forward is torch's own ``sigmoid`` and ``mul`` (their bits); the backward is one pass for
``dL/dv = g * s`` and ``dL/dr = ((g * v) * (1 - s)) * s`` with the roundings of autograd's mul and
sigmoid backward, so the gradients are autograd's bits.
"""

from __future__ import annotations

import torch

from spikeattn.ops._pointwise_host import DTYPES, check, is_available, run

__all__ = ["DTYPES", "is_available", "fused_sigmoid_gate", "fused_sigmoid_gate_backward"]


def fused_sigmoid_gate(r: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sigmoid(r) * v, sigmoid(r))``: torch's ops, so the reference's values."""
    check("sigmoid_gate", r, v)
    s = torch.sigmoid(r)
    return s * v, s


def fused_sigmoid_gate_backward(s: torch.Tensor, v: torch.Tensor, grad: torch.Tensor):
    """``(dL/dr, dL/dv)`` from ``s = sigmoid(r)``, ``v`` and ``dL/dout``."""
    check("sigmoid_gate", s, v, grad)
    s, v, grad = s.contiguous(), v.contiguous(), grad.contiguous()  # kept in locals: the C code reads them
    gr, gv = torch.empty_like(s), torch.empty_like(v)
    run("sigmoid_gate_backward", s, v, grad, gr, gv)
    return gr, gv


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::sigmoid_gate", "cpu", fused_sigmoid_gate)
torch.library.impl("spikeattn::sigmoid_gate_backward", "cpu", fused_sigmoid_gate_backward)
