"""The registered spike-pool ops (max-pool): schemas, fake kernels, autograd. The CPU kernels register in ``cpu.py``.

``spikeattn::spike_pool`` gives the values only (no_grad, or input that needs no gradient);
``spikeattn::spike_pool_where`` also returns, per output, the offset of the chosen cell in its window
(uint8, ``row * kernel_size + col``): all its backward needs, 1 byte per output instead of aten's int64
index. The backward op is differentiable too (its gradient is a gather at the chosen cells), so
double backward gives torch's result.
"""

from __future__ import annotations

import torch

_ARGS = "int kernel_size, int stride, int padding"
torch.library.define("spikeattn::spike_pool", f"(Tensor x, {_ARGS}) -> Tensor")
torch.library.define("spikeattn::spike_pool_where", f"(Tensor x, {_ARGS}) -> (Tensor, Tensor)")
torch.library.define("spikeattn::spike_pool_backward",
                     f"(Tensor grad_out, Tensor where, int height, int width, {_ARGS}) -> Tensor")


def pooled(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of one side (floor mode, as ``nn.MaxPool2d``'s default)."""
    return (size + 2 * padding - kernel_size) // stride + 1


def out_shape(shape, kernel_size: int, stride: int, padding: int) -> tuple[int, ...]:
    """``[N, C, H, W]`` -> ``[N, C, H', W']``."""
    *lead, h, w = shape
    return (*lead, pooled(h, kernel_size, stride, padding), pooled(w, kernel_size, stride, padding))


@torch.library.register_fake("spikeattn::spike_pool")
def _values_fake(x, kernel_size, stride, padding):
    return x.new_empty(out_shape(x.shape, kernel_size, stride, padding))


@torch.library.register_fake("spikeattn::spike_pool_where")
def _where_fake(x, kernel_size, stride, padding):
    shape = out_shape(x.shape, kernel_size, stride, padding)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.uint8)


@torch.library.register_fake("spikeattn::spike_pool_backward")
def _backward_fake(grad_out, where, height, width, kernel_size, stride, padding):
    return grad_out.new_empty((*grad_out.shape[:-2], height, width))


def _setup_context(ctx, inputs, output):
    x, *ctx.pool = inputs
    ctx.size = x.shape[-2:]
    ctx.save_for_backward(output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, _grad_where):
    if grad_out is None:
        return None, None, None, None
    (where,) = ctx.saved_tensors
    grad_x = torch.ops.spikeattn.spike_pool_backward(grad_out.contiguous(), where, *ctx.size, *ctx.pool)
    return grad_x, None, None, None


torch.library.register_autograd("spikeattn::spike_pool_where", _backward, setup_context=_setup_context)


def cell_indices(where: torch.Tensor, width: int, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """The chosen cells as aten's indices: int64 ``row * width + col`` in the input plane, ``[N, C, H', W']``."""
    oh = torch.arange(where.shape[-2], device=where.device)[:, None]   # (H', 1)
    ow = torch.arange(where.shape[-1], device=where.device)            # (W',)
    o = where.long()
    return (oh * stride - padding + o // kernel_size) * width + ow * stride - padding + o % kernel_size


def _setup_backward_context(ctx, inputs, output):
    _, where, _, width, *pool = inputs
    ctx.width, ctx.pool = width, pool
    ctx.save_for_backward(where)


def _backward_backward(ctx, grad_grad_x):
    # The backward is linear in grad_out: its own gradient reads each output's chosen cell (a gather).
    (where,) = ctx.saved_tensors
    index = cell_indices(where, ctx.width, *ctx.pool).flatten(-2)                     # (N, C, H'*W')
    grad = grad_grad_x.flatten(-2).gather(-1, index).view(where.shape)
    return (grad,) + (None,) * 6


torch.library.register_autograd("spikeattn::spike_pool_backward", _backward_backward,
                                setup_context=_setup_backward_context)
