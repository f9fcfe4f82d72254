"""The registered channel-mix core (``spikeattn::srffn`` / ``srffn_backward``): schemas, fake kernels,
autograd. The forward also returns what the backward needs: ``h = relu(xk Wk^T)^2`` (the hidden layer),
``s = sigmoid(xr Wr^T)`` and ``v = h Wv^T``. The CPU kernels register themselves in ``cpu.py``."""

from __future__ import annotations

import torch

torch.library.define("spikeattn::srffn", "(Tensor xk, Tensor xr, Tensor wk, Tensor wr, Tensor wv) -> (Tensor, Tensor, Tensor, Tensor)")
torch.library.define(
    "spikeattn::srffn_backward",
    "(Tensor grad, Tensor xk, Tensor xr, Tensor wk, Tensor wr, Tensor wv, Tensor h, Tensor s, Tensor v) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)


@torch.library.register_fake("spikeattn::srffn")
def _forward_fake(xk, xr, wk, wr, wv):
    return (xr.new_empty(*xr.shape[:-1], wv.shape[0]), xk.new_empty(*xk.shape[:-1], wk.shape[0]),
            xr.new_empty(*xr.shape[:-1], wr.shape[0]), xr.new_empty(*xr.shape[:-1], wv.shape[0]))


@torch.library.register_fake("spikeattn::srffn_backward")
def _backward_fake(grad, xk, xr, wk, wr, wv, h, s, v):
    return tuple(torch.empty_like(t) for t in (xk, xr, wk, wr, wv))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs, *output[1:])
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad, _grad_h, _grad_s, _grad_v):
    if grad is None:
        return (None,) * 5
    return tuple(torch.ops.spikeattn.srffn_backward(grad.contiguous(), *ctx.saved_tensors))


torch.library.register_autograd("spikeattn::srffn", _backward, setup_context=_setup_context)
