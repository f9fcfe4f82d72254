r"""SSA core by torch matmuls on any device and dtype: the registered op ``spikeattn::ssa_matmul``.

SSA has no softmax, so with 0/1 operands :math:`(Q K^\top) V = Q (K^\top V)` holds exactly (every
partial sum is an integer, exact in fp32 below :math:`2^{24}`); ``order`` picks the association:
:math:`2N^2d` (``qk_first``) or :math:`2Nd^2` (``kv_first``) multiply-adds per head. The forward
returns, next to the output, Q/K/V as uint8 (1 byte per spike) and the middle product (``Q K^T`` or
``K^T V``) as uint8 when its counts fit (else an empty tensor and backward recomputes it): all the
backward needs.
"""

from __future__ import annotations

import torch

from spikeattn.ops._dtypes import state_dtype as acc_dtype  # counts up to N*d stay exact (not bf16/fp16)

ORDERS = ("qk_first", "kv_first")

torch.library.define(
    "spikeattn::ssa_matmul", "(Tensor qkv, int heads, float scale, str order) -> (Tensor, Tensor, Tensor)"
)


def ssa_order(n_tokens: int, head_dim: int) -> str:
    """The cheaper exact association: ``qk_first`` costs ``2 N^2 d``, ``kv_first`` ``2 N d^2``."""
    return "qk_first" if n_tokens < head_dim else "kv_first"


def split_heads(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """``[..., N, 3C]`` (Q | K | V, heads side by side) -> a view ``(3, ..., H, N, d)``."""
    *lead, n, c3 = qkv.shape
    x = qkv.reshape(*lead, n, 3, heads, c3 // 3 // heads)   # (..., N, 3, H, d)
    return x.movedim(-3, 0).transpose(-3, -2)               # (3, ..., H, N, d)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(..., H, N, d)`` -> ``[..., N, H*d]``."""
    x = x.transpose(-3, -2)                                  # (..., N, H, d)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def _middle_shape(qkv_shape, heads: int, order: str) -> tuple[int, ...]:
    *lead, n, c3 = qkv_shape
    d = c3 // 3 // heads
    if order == "qk_first":
        return (*lead, heads, n, n) if d <= 255 else (0,)   # counts <= d
    return (*lead, heads, d, d) if n <= 255 else (0,)       # counts <= N


@torch.library.impl("spikeattn::ssa_matmul", "CompositeExplicitAutograd")
def ssa_matmul_forward(qkv, heads, scale, order):
    acc = acc_dtype(qkv.dtype)
    # One dense copy: the matmuls and the uint8 copy kept for backward read contiguous memory.
    stacked = split_heads(qkv, heads).to(acc).contiguous()          # (3, ..., H, N, d)
    q, k, v = stacked.unbind(0)
    with torch.autocast(qkv.device.type, enabled=False):  # bf16 matmuls would round counts > 256
        if order == "qk_first":
            middle = q @ k.transpose(-2, -1)                         # (.., N, N)
            out = (middle @ v) * scale
        else:
            middle = k.transpose(-2, -1) @ v                         # (.., d, d)
            out = (q @ middle) * scale
    keep = middle.to(torch.uint8) if _middle_shape(qkv.shape, heads, order) != (0,) else \
        qkv.new_empty(0, dtype=torch.uint8)
    return merge_heads(out), stacked.to(torch.uint8), keep


@torch.library.register_fake("spikeattn::ssa_matmul")
def _fake(qkv, heads, scale, order):
    *lead, n, c3 = qkv.shape
    out = qkv.new_empty((*lead, n, c3 // 3), dtype=acc_dtype(qkv.dtype))
    stacked = qkv.new_empty((3, *lead, heads, n, c3 // 3 // heads), dtype=torch.uint8)
    return out, stacked, qkv.new_empty(_middle_shape(qkv.shape, heads, order), dtype=torch.uint8)


def _setup_context(ctx, inputs, output):
    qkv, _, scale, order = inputs
    ctx.scale, ctx.order, ctx.acc, ctx.in_dtype = scale, order, acc_dtype(qkv.dtype), qkv.dtype
    ctx.save_for_backward(output[1], output[2])
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, _grad_stacked, _grad_middle):
    if grad_out is None:
        return None, None, None, None
    stacked, middle = ctx.saved_tensors
    q, k, v = stacked.to(ctx.acc).unbind(0)
    *lead, heads, n, d = q.shape
    g = grad_out.reshape(*lead, n, heads, d).transpose(-3, -2).to(ctx.acc) * ctx.scale  # (..., H, N, d)
    grad = torch.empty(stacked.shape, dtype=ctx.acc, device=stacked.device)
    grad_q, grad_k, grad_v = grad.unbind(0)
    if ctx.order == "qk_first":
        a = middle.to(ctx.acc) if middle.numel() else q @ k.transpose(-2, -1)   # (.., N, N)
        grad_a = g @ v.transpose(-2, -1)
        torch.matmul(grad_a, k, out=grad_q)
        torch.matmul(grad_a.transpose(-2, -1), q, out=grad_k)
        torch.matmul(a.transpose(-2, -1), g, out=grad_v)
    else:
        kv = middle.to(ctx.acc) if middle.numel() else k.transpose(-2, -1) @ v  # (.., d, d)
        grad_kv = q.transpose(-2, -1) @ g
        torch.matmul(g, kv.transpose(-2, -1), out=grad_q)
        torch.matmul(v, grad_kv.transpose(-2, -1), out=grad_k)
        torch.matmul(k, grad_kv, out=grad_v)
    # (3, ..., H, N, d) -> [..., N, 3C], the input's layout
    grad_tokens = grad.transpose(-3, -2).movedim(0, -3)                      # (..., N, 3, H, d)
    return grad_tokens.reshape(*grad_tokens.shape[:-3], -1).to(ctx.in_dtype), None, None, None


torch.library.register_autograd("spikeattn::ssa_matmul", _backward, setup_context=_setup_context)
