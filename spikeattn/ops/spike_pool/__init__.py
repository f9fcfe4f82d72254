"""Max-pool of spike maps (Spikformer's SPS/SCS stems): the public op and its one backend table.

Backends: ``torch`` (``F.max_pool2d``, any device and dtype) and ``cpu`` (one fused C++ pass; fp32).
``auto`` picks ``cpu`` for fp32 CPU input where the kernel builds, else ``torch``. The fused op is
exact for any input values, not only spikes: the same output bits and the same gradient bits as torch
(each output's gradient goes to the same cell: its window's first max in row-major order). It saves
1 byte per output for backward, and nothing under no_grad, where aten's kernel computes and keeps
an int64 index per output.
"""

from __future__ import annotations

import torch

from spikeattn._validate import check_int
from spikeattn.ops._backends import resolve_cpu_fp32
from spikeattn.ops.spike_pool import cpu
from spikeattn.ops.spike_pool.op import pooled
from spikeattn.ops.spike_pool.reference import naive_spike_pool

__all__ = ["spike_pool", "naive_spike_pool", "BACKENDS", "resolve_backend"]

MAX_KERNEL = 16  # the chosen cell's offset in the window (row * k + col) must fit a uint8


def fused_spike_pool(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return torch.ops.spikeattn.spike_pool_where(x, kernel_size, stride, padding)[0]
    return torch.ops.spikeattn.spike_pool(x, kernel_size, stride, padding)


BACKENDS = {"torch": naive_spike_pool, "cpu": fused_spike_pool}


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32 CPU input, else ``torch``."""
    return resolve_cpu_fp32(backend, x, "x", cpu, "max-pool")


def spike_pool(x: torch.Tensor, kernel_size: int = 3, stride: int = 2, padding: int = 1,
                     backend: str = "auto") -> torch.Tensor:
    r"""2-D max-pool, as ``F.max_pool2d(x, kernel_size, stride, padding)`` (square windows, floor mode).

    .. math::
        y[n, c, i, j] = \max_{0 \le a, b < k} x[n, c, s i - p + a, s j - p + b]
        \quad (\text{cells outside the map left out})

    Args:
        x: ``[N, C, H, W]`` floating point, any values (LIF spikes in the stems).
        kernel_size: window side k, 1..16.
        stride: step s >= 1.
        padding: p, 0..k // 2 (torch's limit).
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``[N, C, H', W']`` with ``H' = (H + 2p - k) // s + 1`` (the same for W).

    Example:
        >>> spike_pool((torch.rand(2, 4, 32, 32) < 0.2).float()).shape
        torch.Size([2, 4, 16, 16])
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point [N, C, H, W], got {x.dtype} of shape {tuple(x.shape)}")
    check_int(kernel_size, "kernel_size")
    check_int(stride, "stride")
    check_int(padding, "padding", minimum=0)
    if kernel_size > MAX_KERNEL or padding > kernel_size // 2:
        raise ValueError(f"need kernel_size <= {MAX_KERNEL} and padding <= kernel_size // 2, "
                         f"got kernel_size={kernel_size}, padding={padding}")
    if min(pooled(side, kernel_size, stride, padding) for side in x.shape[2:]) < 1:
        raise ValueError(f"a {kernel_size}x{kernel_size} window with padding {padding} does not fit x of shape "
                         f"{tuple(x.shape)} (H and W must be >= kernel_size - 2 * padding)")
    return BACKENDS[resolve_backend(backend, x)](x, kernel_size, stride, padding)
