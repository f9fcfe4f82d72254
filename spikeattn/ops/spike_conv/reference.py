"""The oracles: the convolution as ``F.conv2d`` and its weight gradient as torch's dense convolution backward."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def naive_spike_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                       stride=1, padding=0, dilation=1) -> torch.Tensor:
    """``F.conv2d`` (groups 1): ``x [N, C, H, W]``, ``weight [O, C, KH, KW]`` -> ``[N, O, OH, OW]``."""
    return F.conv2d(x, weight, bias, stride, padding, dilation)


def naive_spike_conv_grad_weight(grad_y: torch.Tensor, x: torch.Tensor, weight_size, stride=1, padding=0,
                                 dilation=1) -> torch.Tensor:
    """``dL/dW [O, C, KH, KW]`` of ``F.conv2d(x, W)`` from ``grad_y [N, O, OH, OW]`` and uint8 ``x [N, C, H, W]``."""
    return torch.nn.grad.conv2d_weight(x.to(grad_y.dtype), list(weight_size), grad_y, stride, padding, dilation)
