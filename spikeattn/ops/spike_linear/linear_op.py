"""The registered op ``spikeattn::spike_linear``: schema, kernel, fake kernel and autograd.

``x @ W^T + b`` whose backward keeps an integer-valued ``x`` (spikes, spike sums) in 1 byte and
computes the weight gradient from it with ``spike_grad_weight``. Registered through torch.library
so torch.compile traces it as one node and an op counter sees it as one op with a known name
(``spikeattn.opcount`` has a rule for it), whichever GEMM runs inside.
"""

from __future__ import annotations

import torch

from spikeattn.ops.linear import linear
from spikeattn.ops.spike_linear.compact import compact_spikes
from spikeattn.ops.spike_linear.grad_weight import spike_grad_weight

torch.library.define("spikeattn::spike_linear", "(Tensor x, Tensor weight, Tensor? bias, bool is_spikes) -> Tensor")


@torch.library.impl("spikeattn::spike_linear", "CompositeExplicitAutograd")
def spike_linear_forward(x, weight, bias, is_spikes):
    # ``linear`` owns the GEMM choice (oneDNN for fp32 on AVX-512 AMD CPUs, else MKL; autograd is off in here).
    return linear(x, weight, bias)


@torch.library.register_fake("spikeattn::spike_linear")
def _fake(x, weight, bias, is_spikes):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _setup_context(ctx, inputs, output):
    x, weight, bias, is_spikes = inputs
    small = x.to(torch.uint8) if is_spikes else compact_spikes(x)
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x if small is None else small, weight)


def _backward(ctx, grad_y):
    x, weight = ctx.saved_tensors
    grad_x = grad_w = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_x = linear(grad_y, weight.to(grad_y.dtype).T)
    if ctx.needs_input_grad[1]:
        g2, x2 = grad_y.reshape(-1, grad_y.shape[-1]), x.reshape(-1, x.shape[-1])
        # uint8 input: a gather-sum over its nonzeros (a fifth of the dense GEMM at 20% spikes)
        grad_w = spike_grad_weight(g2, x2) if x.dtype == torch.uint8 else linear(g2.T, x2.to(g2.dtype).T)
        grad_w = grad_w.to(weight.dtype)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_b = grad_y.reshape(-1, grad_y.shape[-1]).sum(0)
    return grad_x, grad_w, grad_b, None


torch.library.register_autograd("spikeattn::spike_linear", _backward, setup_context=_setup_context)
