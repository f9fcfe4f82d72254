"""The registered sigmoid gate ops (``spikeattn::sigmoid_gate`` / ``sigmoid_gate_backward``): schemas, fake
kernels, autograd. The forward also returns ``s = sigmoid(r)``, all the backward needs besides ``v``.
The CPU kernels register themselves in ``cpu.py``."""

from __future__ import annotations

import torch

torch.library.define("spikeattn::sigmoid_gate", "(Tensor r, Tensor v) -> (Tensor, Tensor)")
torch.library.define("spikeattn::sigmoid_gate_backward", "(Tensor s, Tensor v, Tensor grad) -> (Tensor, Tensor)")


@torch.library.register_fake("spikeattn::sigmoid_gate")
def _forward_fake(r, v):
    return torch.empty_like(r), torch.empty_like(r)


@torch.library.register_fake("spikeattn::sigmoid_gate_backward")
def _backward_fake(s, v, grad):
    return torch.empty_like(s), torch.empty_like(v)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1], inputs[1])  # s, v
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad, _grad_s):
    s, v = ctx.saved_tensors
    if grad is None:
        return None, None
    return tuple(torch.ops.spikeattn.sigmoid_gate_backward(s, v, grad.contiguous()))


torch.library.register_autograd("spikeattn::sigmoid_gate", _backward, setup_context=_setup_context)
