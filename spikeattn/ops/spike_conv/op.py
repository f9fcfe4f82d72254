"""The registered op ``spikeattn::spike_conv_grad_weight``: schema and fake kernel (``cpu.py`` registers the CPU one)."""

from __future__ import annotations

import torch

torch.library.define(
    "spikeattn::spike_conv_grad_weight",
    "(Tensor grad_y, Tensor x, int[] weight_size, int[2] stride, int[2] padding, int[2] dilation) -> Tensor",
)


@torch.library.register_fake("spikeattn::spike_conv_grad_weight")
def _fake(grad_y, x, weight_size, stride, padding, dilation):
    return grad_y.new_empty(list(weight_size))
