"""The registered WKV op (``spikeattn::wkv_forward`` / ``wkv_backward``).

One schema, autograd rule and fake kernel for every fused path; each device registers its own kernel
(``cpu.py`` for the CPU, ``cupy.py`` for CUDA). Inputs are fp32 or fp64 (the public ``wkv`` casts 16-bit
input to fp32). The forward returns ``lse`` [B, T, C], the log of each token's denominator, next to the
output: with ``y`` it is all the backward's reverse sweep needs, so no per-token state is stored.
"""

from __future__ import annotations

import torch

torch.library.define("spikeattn::wkv_forward", "(Tensor w, Tensor u, Tensor k, Tensor v) -> (Tensor, Tensor)")
torch.library.define(
    "spikeattn::wkv_backward",
    "(Tensor w, Tensor u, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor gy) -> (Tensor, Tensor, Tensor, Tensor)",
)


@torch.library.register_fake("spikeattn::wkv_forward")
def _forward_fake(w, u, k, v):
    return torch.empty_like(k), torch.empty_like(k)


@torch.library.register_fake("spikeattn::wkv_backward")
def _backward_fake(w, u, k, v, y, lse, gy):
    return torch.empty_like(w), torch.empty_like(u), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output):
    w, u, k, v = inputs
    y, lse = output
    ctx.save_for_backward(w, u, k, v, y, lse)
    ctx.mark_non_differentiable(lse)


def _backward(ctx, grad_y, _grad_lse):
    w, u, k, v, y, lse = ctx.saved_tensors
    gw, gu, gk, gv = torch.ops.spikeattn.wkv_backward(w, u, k, v, y, lse, grad_y.contiguous())
    return gw, gu, gk, gv


torch.library.register_autograd("spikeattn::wkv_forward", _backward, setup_context=_setup_context)
