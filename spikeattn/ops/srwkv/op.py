"""The registered time-mix core (``spikeattn::srwkv`` / ``srwkv_backward``): schemas, fake kernels, autograd.
The forward also returns what the backward needs: the keys and values ``k, v``, the WKV output ``y`` and
its ``lse`` (see ``spikeattn.ops.wkv.op``), ``s = sigmoid(xr Wr^T)`` and the gated ``s * y``. The CPU kernels
register themselves in ``cpu.py``."""

from __future__ import annotations

import torch

_INPUTS = "Tensor xk, Tensor xv, Tensor xr, Tensor w, Tensor u, Tensor wk, Tensor wv, Tensor wr, Tensor wo"
_SAVED = "Tensor k, Tensor v, Tensor y, Tensor lse, Tensor s, Tensor gated"
torch.library.define("spikeattn::srwkv", f"({_INPUTS}) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")
torch.library.define("spikeattn::srwkv_backward", f"(Tensor grad, {_INPUTS}, {_SAVED}) -> " + "(" + ", ".join(["Tensor"] * 9) + ")")


@torch.library.register_fake("spikeattn::srwkv")
def _forward_fake(xk, xv, xr, w, u, wk, wv, wr, wo):
    lead = xk.shape[:-1]
    return (xk.new_empty(*lead, wo.shape[0]), *(xk.new_empty(*lead, wk.shape[0]) for _ in range(6)))


@torch.library.register_fake("spikeattn::srwkv_backward")
def _backward_fake(grad, xk, xv, xr, w, u, wk, wv, wr, wo, *saved):
    return tuple(torch.empty_like(t) for t in (xk, xv, xr, w, u, wk, wv, wr, wo))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs, *output[1:])
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad, *_saved_grads):
    if grad is None:
        return (None,) * 9
    return tuple(torch.ops.spikeattn.srwkv_backward(grad.contiguous(), *ctx.saved_tensors))


torch.library.register_autograd("spikeattn::srwkv", _backward, setup_context=_setup_context)
