"""Weight gradient of a Conv2d fed with spikes: its public function and its one backend table.

Backends: ``torch`` (torch's dense convolution backward, the oracle) and ``cpu`` (a gather-sum over
the nonzero inputs: ``nnz(x) * KH * KW * O`` additions instead of ``N * OH * OW * O * C * KH * KW``
multiply-adds). ``cpu.route`` picks how: the direct kernel up to 35% listed inputs on AVX-512 CPUs;
without AVX-512, patches through the Linear's kernel (``patches.py``) for 128+ outputs up to 30%;
torch's dense backward otherwise. ``auto`` picks ``cpu`` for fp32 on the CPU.
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve_cpu_fp32
from spikeattn.ops._checks import check_tensors
from spikeattn.ops.spike_conv import cpu
from spikeattn.ops.spike_conv.reference import naive_spike_conv_grad_weight

__all__ = ["spike_conv_grad_weight", "BACKENDS", "resolve_backend", "conv_args"]


def fused_spike_conv_grad_weight(grad_y, x, weight_size, stride, padding, dilation):
    return torch.ops.spikeattn.spike_conv_grad_weight(grad_y, x, weight_size, stride, padding, dilation)


BACKENDS = {"torch": naive_spike_conv_grad_weight, "cpu": fused_spike_conv_grad_weight}


def resolve_backend(backend: str, grad_y: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32 on the CPU (the kernel's one dtype), else ``torch``."""
    return resolve_cpu_fp32(backend, grad_y, "grad_y", cpu, "spike_conv_grad_weight")


def _pair(value, name: str, least: int) -> list[int]:
    pair = [value, value] if isinstance(value, int) else list(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= least
                                                 for v in pair):
        raise ValueError(f"{name} must be an int >= {least} or a pair of them, got {value!r}")
    return pair


def conv_args(stride, padding, dilation) -> tuple[list[int], list[int], list[int]]:
    """``stride``, ``padding``, ``dilation`` as pairs (ints >= 1, >= 0, >= 1); ValueError otherwise."""
    return _pair(stride, "stride", 1), _pair(padding, "padding", 0), _pair(dilation, "dilation", 1)


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def spike_conv_grad_weight(grad_y: torch.Tensor, x: torch.Tensor, weight_size, stride=1, padding=0, dilation=1,
                           backend: str = "auto") -> torch.Tensor:
    r"""Weight gradient :math:`\partial L / \partial W` of ``y = conv2d(x, W)`` (groups 1) with integer inputs.

    Args:
        grad_y: ``[N, O, OH, OW]`` floating point, the gradient of the convolution's output.
        x: ``[N, C, H, W]`` uint8, its input (0/1 spikes, or counts up to 255), same device.
        weight_size: ``(O, C, KH, KW)``; stride, padding, dilation: ints or pairs, as ``F.conv2d``.
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``[O, C, KH, KW]`` in grad_y's dtype; on ``cpu`` each entry sums its terms in a fixed order
        (deterministic for any thread count), equal to the dense backward up to fp32 rounding.
    """
    stride, padding, dilation = conv_args(stride, padding, dilation)
    check_tensors(4, "[N, C, H, W]", grad_y=grad_y, x=x)
    if not grad_y.is_floating_point():
        raise TypeError(f"grad_y must be floating point, got {grad_y.dtype}")
    if x.dtype != torch.uint8:
        raise TypeError(f"x must be uint8 (spikes or small counts), got {x.dtype}")
    weight_size = [int(v) for v in weight_size]
    if len(weight_size) != 4 or weight_size[1] != x.shape[1] or weight_size[0] != grad_y.shape[1]:
        raise ValueError(f"weight_size {weight_size} must be (O, C, KH, KW) with C = x.shape[1] = {x.shape[1]} "
                         f"and O = grad_y.shape[1] = {grad_y.shape[1]}")
    expected = (x.shape[0], weight_size[0],
                *(out_size(x.shape[2 + i], weight_size[2 + i], stride[i], padding[i], dilation[i]) for i in (0, 1)))
    if tuple(grad_y.shape) != expected or x.device != grad_y.device:
        raise ValueError(f"grad_y {tuple(grad_y.shape)} on {grad_y.device} must be the output gradient {expected} "
                         f"of x {tuple(x.shape)} on {x.device} (same device)")
    return BACKENDS[resolve_backend(backend, grad_y)](grad_y, x, weight_size, stride, padding, dilation)
