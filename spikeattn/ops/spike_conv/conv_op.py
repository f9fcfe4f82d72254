"""The registered op ``spikeattn::spike_conv2d``: schema, kernel, fake kernel and autograd.

Forward is ``F.conv2d`` itself (the same call: bit-identical outputs). Backward keeps an
integer-valued input (spikes, spike sums) in 1 byte instead of 4 and computes the weight gradient
from it with ``spike_conv_grad_weight``; the input gradient is torch's own convolution backward.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from spikeattn.ops.spike_conv.grad_weight import spike_conv_grad_weight
from spikeattn.ops.spike_linear.compact import compact_spikes

torch.library.define(
    "spikeattn::spike_conv2d",
    "(Tensor x, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation) -> Tensor",
)


@torch.library.impl("spikeattn::spike_conv2d", "CompositeExplicitAutograd")
def spike_conv2d_forward(x, weight, bias, stride, padding, dilation):
    return F.conv2d(x, weight, bias, stride, padding, dilation)


@torch.library.register_fake("spikeattn::spike_conv2d")
def _fake(x, weight, bias, stride, padding, dilation):
    return F.conv2d(x, weight, bias, stride, padding, dilation)  # on fake tensors: shapes only


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, dilation = inputs
    small = compact_spikes(x)
    ctx.geometry = (list(stride), list(padding), list(dilation))
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x if small is None else small, weight)


def _backward(ctx, grad_y):
    x, weight = ctx.saved_tensors
    stride, padding, dilation = ctx.geometry
    want_x, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_x = grad_w = grad_b = None
    if x.dtype == torch.uint8:
        if want_x:  # torch's data gradient; it reads only x's shape
            grad_x = torch.nn.grad.conv2d_input(list(x.shape), weight, grad_y, stride, padding, dilation)
        if want_w:
            grad_w = spike_conv_grad_weight(grad_y, x, list(weight.shape), stride, padding, dilation).to(weight.dtype)
    elif want_x or want_w:  # not integers: torch's backward, as F.conv2d's
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_y, x, weight, None, stride, padding, dilation, False, [0, 0], 1, [want_x, want_w, False])
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_b = grad_y.sum((0, 2, 3))
    return grad_x, grad_w, grad_b, None, None, None


torch.library.register_autograd("spikeattn::spike_conv2d", _backward, setup_context=_setup_context)
