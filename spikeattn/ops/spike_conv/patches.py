"""The spike-fed convolution's weight gradient as a Linear's: unfold the uint8 input into patches, then
the Linear's gather-sum kernel (``spike_linear``), which reads grad_y in its own layout (no transposed copy).

``grad_W[o, (r, q, c)] = sum_m grad_y[m, o] * patches[m, (r, q, c)]`` over the output positions m
(``N * OH * OW`` rows). The Linear kernel stays fast without AVX-512, where the direct gather kernel
(``cuda/spike_conv_host.cpp``) loses to oneDNN's dense backward (``benchmarks/bench_spike_grad.py``).
The patches cost ``KH * KW`` bytes per input byte, the memory of the dense backward's own im2col / 4.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from spikeattn.ops.spike_linear.cpu import grad_weight_per_position


def patches(x: torch.Tensor, kernel: list[int], stride: list[int], padding: list[int], dilation: list[int],
            out: list[int]) -> torch.Tensor:
    """im2col of ``x [N, C, H, W]`` (uint8) channels last: ``[N * OH * OW, KH * KW * C]``, zero padded."""
    (n, c), (kh, kw), (oh, ow) = x.shape[:2], kernel, out
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, padding[1], padding[1], padding[0], padding[0]))
    cols = x.new_empty((n, oh, ow, kh, kw, c))
    for r in range(kh):
        top = r * dilation[0]
        rows = xp[:, top:top + (oh - 1) * stride[0] + 1:stride[0]]
        for q in range(kw):
            left = q * dilation[1]
            cols[:, :, :, r, q] = rows[:, :, left:left + (ow - 1) * stride[1] + 1:stride[1]]
    return cols.view(n * oh * ow, kh * kw * c)


def grad_weight(grad_y: torch.Tensor, x: torch.Tensor, weight_size: list[int], stride: list[int],
                padding: list[int], dilation: list[int], complement: bool) -> torch.Tensor:
    """``dL/dW [O, C, KH, KW]`` from fp32 ``grad_y [N, O, OH, OW]`` and uint8 ``x``, through the Linear kernel.

    ``complement`` (0/1 spikes, mostly ones): the kernel sums over the zeros of ``x`` instead,
    ``grad_W = grad_W(ones) - grad_W(1 - x)``. The ones' term is the same for every input channel:
    per tap, grad_y summed over the output positions whose tap lands inside the image. Listing the
    zeros of the patches themselves would also list the padding.
    """
    (o, c, kh, kw), (oh, ow) = weight_size, grad_y.shape[2:]
    geometry = ([kh, kw], stride, padding, dilation, [oh, ow])
    cols = patches(1 - x if complement else x, *geometry)
    grad_w = grad_weight_per_position(grad_y.reshape(grad_y.shape[0], o, oh * ow), cols).view(o, kh, kw, c)
    if complement:
        inside = patches(x.new_ones((1, 1, *x.shape[2:])), *geometry).to(grad_y.dtype)  # [OH * OW, KH * KW]
        ones = grad_y.sum(0).reshape(o, oh * ow) @ inside
        grad_w = ones.view(o, kh, kw, 1) - grad_w
    return grad_w.permute(0, 3, 1, 2).contiguous()
