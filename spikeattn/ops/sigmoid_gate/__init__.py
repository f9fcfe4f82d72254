"""``sigmoid(r) * v`` (SpikeGPT's receptance gates): the public op and its one backend table.

Backends: ``torch`` (the reference: any device and dtype, broadcasting) and ``cpu`` (torch's forward,
saving ``sigmoid(r)``, and a one-pass backward with autograd's bits instead of its three passes).
``auto`` picks ``cpu`` for contiguous fp32/fp64 CPU tensors of one shape with at least
``MIN_FUSED_NUMEL`` elements where the kernel builds, else ``torch``.
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve
from spikeattn.ops.relu_square import MIN_FUSED_NUMEL
from spikeattn.ops.sigmoid_gate import cpu
from spikeattn.ops.sigmoid_gate import op as _op  # noqa: F401  (defines the torch.library ops)
from spikeattn.ops.sigmoid_gate.reference import naive_sigmoid_gate

__all__ = ["sigmoid_gate", "naive_sigmoid_gate", "BACKENDS", "resolve_backend"]


def fused_sigmoid_gate(r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.ops.spikeattn.sigmoid_gate(r, v)[0]


BACKENDS = {"torch": naive_sigmoid_gate, "cpu": fused_sigmoid_gate}


def resolve_backend(backend: str, r: torch.Tensor, v: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for contiguous fp32/fp64 CPU ``r`` and ``v`` of one shape, dtype and device with
    ``MIN_FUSED_NUMEL`` elements or more, else ``torch``."""
    fast_ok = (r.dtype in cpu.DTYPES and r.numel() >= MIN_FUSED_NUMEL and v.dtype == r.dtype and v.shape == r.shape
               and v.device == r.device and r.is_contiguous() and v.is_contiguous())
    return resolve(backend, r, "r", {"cpu": cpu}, fast_ok=fast_ok)


def sigmoid_gate(r: torch.Tensor, v: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    r"""``sigmoid(r) * v`` elementwise.

    .. math::
        y = \sigma(r) \odot v, \qquad \frac{\partial L}{\partial r} = g\, v\, (1 - \sigma(r))\, \sigma(r),
        \quad \frac{\partial L}{\partial v} = g\, \sigma(r)

    Args:
        r, v: floating point; ``cpu`` needs one shape, dtype (fp32/fp64) and the CPU.
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``y``: the values and gradients of ``naive_sigmoid_gate``, bit for bit.

    Example:
        >>> y = sigmoid_gate(torch.randn(4, 128, 192), torch.randn(4, 128, 192))
    """
    for name, t in (("r", r), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    backend = resolve_backend(backend, r, v)
    if backend == "cpu" and (v.shape != r.shape or v.device != r.device):
        raise ValueError(f"backend='cpu' needs r and v of one shape and device, got {tuple(r.shape)} on {r.device} "
                         f"and {tuple(v.shape)} on {v.device}")
    return BACKENDS[backend](r, v)
