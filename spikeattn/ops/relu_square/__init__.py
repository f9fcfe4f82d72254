"""``relu(x)^2`` (SpikeGPT's channel-mix activation): the public op and its one backend table.

Backends: ``torch`` (``square(relu(x))``, the reference: any device and dtype) and ``cpu`` (one fused
C++ pass forward, one backward, autograd's bits). Autograd runs the reference as two passes forward
and three backward over the ``[B, T, 4C]`` hidden activations. ``auto`` picks ``cpu`` for contiguous
fp32/fp64 CPU tensors of at least ``MIN_FUSED_NUMEL`` elements where the kernel builds, else ``torch``.
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve
from spikeattn.ops.relu_square import cpu
from spikeattn.ops.relu_square import op as _op  # noqa: F401  (defines the torch.library ops)
from spikeattn.ops.relu_square.reference import naive_relu_square

__all__ = ["relu_square", "naive_relu_square", "BACKENDS", "resolve_backend", "MIN_FUSED_NUMEL"]

# Below this many elements (e.g. one token in generation) a kernel call costs more than it saves.
MIN_FUSED_NUMEL = 1 << 14


def fused_relu_square(x: torch.Tensor) -> torch.Tensor:
    return torch.ops.spikeattn.relu_square(x)


BACKENDS = {"torch": naive_relu_square, "cpu": fused_relu_square}


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for contiguous fp32/fp64 CPU input of ``MIN_FUSED_NUMEL`` elements or more, else ``torch``."""
    fast_ok = x.dtype in cpu.DTYPES and x.is_contiguous() and x.numel() >= MIN_FUSED_NUMEL
    return resolve(backend, x, "x", {"cpu": cpu}, fast_ok=fast_ok)


def relu_square(x: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    r"""``relu(x)^2`` elementwise.

    .. math::
        y = \max(x, 0)^2, \qquad \frac{\partial L}{\partial x} = 2 \max(x, 0) \frac{\partial L}{\partial y}

    Args:
        x: any shape, floating point.
        backend: ``auto``, ``torch`` or ``cpu`` (fp32/fp64 CPU tensors).

    Returns:
        ``y`` of ``x``'s shape and dtype: the values and gradients of ``naive_relu_square``, bit for bit.

    Example:
        >>> y = relu_square(torch.randn(4, 128, 768))
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    return BACKENDS[resolve_backend(backend, x)](x)
