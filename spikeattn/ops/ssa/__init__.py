"""Spikformer's attention core on token-major spikes: the public op and its one backend table.

Backends: ``torch`` (``spikeattn::ssa_matmul``: torch matmuls on any device and dtype, in the
cheaper association, uint8 copies kept for backward) and ``cpu`` (``spikeattn::ssa_forward``,
fused C++: bitmask popcounts, no permuted copies, 1 bit per spike saved for backward). ``auto``
picks ``cpu`` for fp32 CPU input where the kernel builds, else ``torch``. ``reference.py`` holds
the oracle both are tested against.
"""

from __future__ import annotations

import torch

from spikeattn._validate import check_int
from spikeattn.ops._backends import resolve_cpu_fp32
from spikeattn.ops.ssa import cpu
from spikeattn.ops.ssa.matmul import ORDERS, acc_dtype, ssa_order
from spikeattn.ops.ssa.reference import naive_ssa

__all__ = ["ssa_tokens", "ssa_order", "acc_dtype", "ORDERS", "BACKENDS", "resolve_backend", "naive_ssa"]


def fused_ssa(qkv: torch.Tensor, heads: int, scale: float, order: str) -> torch.Tensor:
    return torch.ops.spikeattn.ssa_forward(qkv, heads, scale)[0]  # same bits in every order


def matmul_ssa(qkv: torch.Tensor, heads: int, scale: float, order: str) -> torch.Tensor:
    if order == "auto":
        order = ssa_order(qkv.shape[-2], qkv.shape[-1] // 3 // heads)
    return torch.ops.spikeattn.ssa_matmul(qkv, heads, scale, order)[0]


BACKENDS = {"torch": matmul_ssa, "cpu": fused_ssa}


def resolve_backend(backend: str, qkv: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32 CPU input, else ``torch``; a dispatch mode changes nothing."""
    return resolve_cpu_fp32(backend, qkv, "qkv", cpu, "SSA")


def ssa_tokens(qkv: torch.Tensor, heads: int, scale: float, order: str = "auto",
               backend: str = "auto") -> torch.Tensor:
    r"""Softmax-free attention :math:`Q K^\top V \cdot s` per head on token-major spikes.

    Args:
        qkv: ``[..., N, 3C]`` 0/1 spikes, Q, K, V side by side on the last dim (a LIF output),
            head ``h`` at channels ``h*d .. h*d+d-1`` of each (``d = C / heads``).
        heads: number of heads.
        scale: ``s``, multiplies the integer counts.
        order: association of the ``torch`` backend: ``auto`` (the cheaper, ``ssa_order``),
            ``qk_first`` or ``kv_first``; every order and backend gives the same bits.
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``[..., N, C]`` fp32 (fp64 for fp64 input), token-major: integer counts times ``scale``
        (nonzero inputs count as 1 on ``cpu``; other values than 0/1 are not supported).

    Example:
        >>> qkv = (torch.rand(2, 3, 16, 48) < 0.3).float()   # [T, B, N, 3C], C = 16
        >>> ssa_tokens(qkv, heads=2, scale=0.125).shape
        torch.Size([2, 3, 16, 16])
    """
    if not isinstance(qkv, torch.Tensor):
        raise TypeError(f"qkv must be a torch.Tensor, got {type(qkv).__name__}")
    if qkv.dim() < 2 or qkv.shape[-1] % 3:
        raise ValueError(f"qkv must be [..., N, 3C] (Q, K, V on the last dim), got shape {tuple(qkv.shape)}")
    check_int(heads, "heads")
    if (qkv.shape[-1] // 3) % heads:
        raise ValueError(f"heads must be a positive int dividing C={qkv.shape[-1] // 3}, got {heads!r}")
    if qkv.shape[-2] * (qkv.shape[-1] // 3 // heads) >= 2**24:
        raise ValueError(f"N * d must stay below 2^24 for exact fp32 counts, got shape {tuple(qkv.shape)}")
    if order not in ("auto", *ORDERS):
        raise ValueError(f"order must be 'auto' or one of {ORDERS}, got {order!r}")
    return BACKENDS[resolve_backend(backend, qkv)](qkv, heads, float(scale), order)
