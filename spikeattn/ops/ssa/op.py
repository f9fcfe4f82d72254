"""The registered SSA core ops (``spikeattn::ssa_forward`` / ``ssa_backward``): schemas, fake kernels, autograd.

The forward returns the spikes' bitmasks ``[..., N, 3, H, ceil(d/64)]`` (int64 words) next to the
output: the backward recomputes ``K^T V`` from them, so nothing else is saved.
"""

from __future__ import annotations

import torch

torch.library.define("spikeattn::ssa_forward", "(Tensor qkv, int heads, float scale) -> (Tensor, Tensor)")
torch.library.define(
    "spikeattn::ssa_backward", "(Tensor grad_out, Tensor bits, int heads, float scale) -> Tensor"
)


def bits_shape(qkv_shape, heads: int) -> tuple[int, ...]:
    *lead, n, c3 = qkv_shape
    return (*lead, n, 3, heads, (c3 // 3 // heads + 63) // 64)


@torch.library.register_fake("spikeattn::ssa_forward")
def _forward_fake(qkv, heads, scale):
    out = qkv.new_empty((*qkv.shape[:-1], qkv.shape[-1] // 3))
    return out, qkv.new_empty(bits_shape(qkv.shape, heads), dtype=torch.int64)


@torch.library.register_fake("spikeattn::ssa_backward")
def _backward_fake(grad_out, bits, heads, scale):
    return grad_out.new_empty((*grad_out.shape[:-1], 3 * grad_out.shape[-1]))


def _setup_context(ctx, inputs, output):
    _, heads, scale = inputs
    ctx.heads, ctx.scale = heads, scale
    ctx.save_for_backward(output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, _grad_bits):
    if grad_out is None:
        return None, None, None
    (bits,) = ctx.saved_tensors
    return torch.ops.spikeattn.ssa_backward(grad_out.contiguous(), bits, ctx.heads, ctx.scale), None, None


torch.library.register_autograd("spikeattn::ssa_forward", _backward, setup_context=_setup_context)
