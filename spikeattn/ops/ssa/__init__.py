"""Spikformer's attention core on token-major spikes: the public op and its one backend table.

Backends: ``torch`` (matmuls on a head-permuted copy, the oracle) and ``cpu`` (fused C++:
bitmask popcounts, no permuted copies, 1 bit per spike saved for backward). ``auto`` picks
``cpu`` for fp32 CPU input outside dispatch modes (an op counter or tracer then sees the
matmuls), else ``torch``.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from spikeattn.ops._backends import resolve
from spikeattn.ops.ssa import cpu
from spikeattn.ops.ssa.reference import naive_ssa

__all__ = ["ssa_tokens", "BACKENDS", "resolve_backend"]


def fused_ssa(qkv: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    return torch.ops.spikeattn.ssa_forward(qkv, heads, scale)[0]


BACKENDS = {"torch": naive_ssa, "cpu": fused_ssa}


def resolve_backend(backend: str, qkv: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32 CPU input with no dispatch mode active, else ``torch``."""
    if backend == "cupy":
        raise ValueError("backend='cupy' has no SSA kernel; use 'auto', 'torch' or 'cpu'")
    if backend == "cpu" and qkv.dtype != torch.float32:
        raise ValueError(f"backend='cpu' needs fp32 qkv, got {qkv.dtype}")
    fast_ok = qkv.dtype == torch.float32 and _get_current_dispatch_mode() is None
    return resolve(backend, qkv, "qkv", {"cpu": cpu}, fast_ok=fast_ok)


def ssa_tokens(qkv: torch.Tensor, heads: int, scale: float, backend: str = "auto") -> torch.Tensor:
    r"""Softmax-free attention :math:`Q K^\top V \cdot s` per head on token-major spikes.

    Args:
        qkv: ``[..., N, 3C]`` 0/1 spikes, Q, K, V side by side on the last dim (a LIF output),
            head ``h`` at channels ``h*d .. h*d+d-1`` of each (``d = C / heads``).
        heads: number of heads.
        scale: ``s``, multiplies the integer counts.
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``[..., N, C]`` fp32, token-major: integer counts times ``scale``, bit-identical across
        backends (nonzero inputs count as 1 on ``cpu``).
    """
    if not isinstance(qkv, torch.Tensor):
        raise TypeError(f"qkv must be a torch.Tensor, got {type(qkv).__name__}")
    if qkv.dim() < 2 or qkv.shape[-1] % 3:
        raise ValueError(f"qkv must be [..., N, 3C] (Q, K, V on the last dim), got shape {tuple(qkv.shape)}")
    if not isinstance(heads, int) or heads < 1 or (qkv.shape[-1] // 3) % heads:
        raise ValueError(f"heads must be a positive int dividing C={qkv.shape[-1] // 3}, got {heads!r}")
    if qkv.shape[-2] * (qkv.shape[-1] // 3 // heads) >= 2**24:
        raise ValueError(f"N * d must stay below 2^24 for exact fp32 counts, got shape {tuple(qkv.shape)}")
    return BACKENDS[resolve_backend(backend, qkv)](qkv, heads, float(scale))
