"""The registered relu^2 ops (``spikeattn::relu_square`` / ``relu_square_backward``): schemas, fake
kernels, autograd. The CPU kernels register themselves in ``cpu.py``."""

from __future__ import annotations

import torch

torch.library.define("spikeattn::relu_square", "(Tensor x) -> Tensor")
torch.library.define("spikeattn::relu_square_backward", "(Tensor x, Tensor grad) -> Tensor")


@torch.library.register_fake("spikeattn::relu_square")
def _forward_fake(x):
    return torch.empty_like(x)


@torch.library.register_fake("spikeattn::relu_square_backward")
def _backward_fake(x, grad):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])  # relu(x) is all the backward needs; x is kept (the caller holds it)


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return torch.ops.spikeattn.relu_square_backward(x, grad.contiguous())


torch.library.register_autograd("spikeattn::relu_square", _backward, setup_context=_setup_context)
