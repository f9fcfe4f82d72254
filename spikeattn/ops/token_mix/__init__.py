"""Token shift + learned mixes (SpikeGPT / RWKV-4): the public op and its one backend table.

Backends: ``torch`` (the reference ops, any device and dtype) and ``cpu`` (one fused C++ pass forward,
one backward; the same output bits as the reference). ``auto`` picks ``cpu`` for fp32/fp64 CPU input
where the kernel builds, else ``torch``.
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve
from spikeattn.ops.token_mix import cpu
from spikeattn.ops.token_mix import op as _op  # noqa: F401  (defines the torch.library ops)
from spikeattn.ops.token_mix.reference import mix, naive_token_mix, token_shift

__all__ = ["token_mix", "token_shift", "mix", "BACKENDS", "resolve_backend"]


def fused_token_mix(x: torch.Tensor, mixes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(torch.ops.spikeattn.token_mix(x, mixes))


BACKENDS = {"torch": naive_token_mix, "cpu": fused_token_mix}


def resolve_backend(backend: str, x: torch.Tensor, mixes: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32/fp64 CPU input (mixes of x's dtype), else ``torch``."""
    fast_ok = x.dtype in cpu.DTYPES and mixes.dtype == x.dtype and mixes.device == x.device
    return resolve(backend, x, "x", {"cpu": cpu}, fast_ok=fast_ok)


def token_mix(x: torch.Tensor, mixes: torch.Tensor, backend: str = "auto") -> tuple[torch.Tensor, ...]:
    r"""Each token mixed with the one before it, once per row of ``mixes``.

    .. math::
        \mathrm{out}_i[b, t] = x[b, t] \odot m_i + x[b, t-1] \odot (1 - m_i), \qquad x[b, -1] = 0

    Args:
        x: ``[B, T, C]`` floating point.
        mixes: ``[M, C]``, one mix per output (SpikeGPT's ``time_mix_k``, ``_v``, ``_r`` stacked).
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        M tensors ``[B, T, C]``.

    Example:
        >>> xk, xr = token_mix(torch.randn(2, 5, 8), torch.rand(2, 8))
    """
    if not isinstance(x, torch.Tensor) or not isinstance(mixes, torch.Tensor):
        raise TypeError(f"x and mixes must be torch.Tensors, got {type(x).__name__} and {type(mixes).__name__}")
    if x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point [B, T, C], got {x.dtype} of shape {tuple(x.shape)}")
    if mixes.dim() != 2 or mixes.shape[1] != x.shape[2]:
        raise ValueError(f"mixes must be [M, C] with C = {x.shape[2]}, got shape {tuple(mixes.shape)}")
    backend = resolve_backend(backend, x, mixes)
    if backend == "cpu" and (mixes.dtype != x.dtype or mixes.device != x.device):
        raise ValueError(f"backend='cpu' needs mixes of x's dtype and device ({x.dtype}, {x.device}), "
                         f"got {mixes.dtype}, {mixes.device}")
    return BACKENDS[backend](x, mixes)
