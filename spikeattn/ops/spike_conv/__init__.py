"""Conv2d layers fed with spikes: ``spike_conv2d`` (the op) and its weight gradient ``spike_conv_grad_weight``.

``spike_conv2d`` is one registered op (``spikeattn::spike_conv2d``): forward is ``F.conv2d``, and
backward keeps integer inputs in 1 byte and sums the weight gradient over the nonzero inputs
(``grad_weight.py``). The oracles are in ``reference.py``.
"""

from __future__ import annotations

import torch

from spikeattn.ops._checks import check_tensors
from spikeattn.ops.spike_conv import conv_op as _conv_op  # noqa: F401  (defines the torch.library op)
from spikeattn.ops.spike_conv.grad_weight import BACKENDS, conv_args, resolve_backend, spike_conv_grad_weight

__all__ = ["spike_conv2d", "spike_conv_grad_weight", "BACKENDS", "resolve_backend"]


def spike_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride=1, padding=0, dilation=1) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation)`` (groups 1) whose backward is cheaper for spikes.

    Args:
        x: ``[N, C, H, W]`` floating point; spikes or spike counts (integers 0..255) are kept in
            1 byte for backward (checked, one pass), anything else as it is.
        weight: ``[O, C, KH, KW]``; bias: ``[O]`` or None; same dtype and device as ``x``.
        stride, padding, dilation: ints or pairs (no string padding).

    Returns:
        ``[N, O, OH, OW]``, the same bits as ``F.conv2d``.
    """
    stride, padding, dilation = conv_args(stride, padding, dilation)
    check_tensors(4, x=x, weight=weight)
    if not x.is_floating_point() or weight.dtype != x.dtype:
        raise TypeError(f"x and weight must share one floating dtype, got {x.dtype} and {weight.dtype}")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight {tuple(weight.shape)} must be [O, C, KH, KW] with C = x.shape[1] = {x.shape[1]} "
                         "(groups 1)")
    if weight.device != x.device or (bias is not None and bias.device != x.device):
        raise ValueError(f"x, weight and bias must be on one device, got {x.device} and {weight.device}")
    return torch.ops.spikeattn.spike_conv2d(x, weight, bias, stride, padding, dilation)
