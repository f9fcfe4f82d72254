"""WKV (the time mixing of RWKV-4 and SpikeGPT): the public op and its one backend table.

Backends: ``torch`` (the reference loop, the oracle), ``cpu`` (fused C++), ``cupy`` (CUDA kernels).
``auto`` picks the fastest one that can run on the input's device.
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve
from spikeattn.ops._checks import check_finite
from spikeattn.ops.wkv import cpu, cupy
from spikeattn.ops.wkv import op as _op  # noqa: F401  (defines the torch.library ops)
from spikeattn.ops._dtypes import state_dtype
from spikeattn.ops.wkv.reference import WKVState, naive_wkv, wkv_step

__all__ = ["wkv", "wkv_step", "WKVState", "BACKENDS", "resolve_backend", "state_dtype"]


def fused_wkv(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The registered op (its CPU or CUDA kernel by device); 16-bit input runs in fp32."""
    sd = state_dtype(k.dtype)
    y, _ = torch.ops.spikeattn.wkv_forward(w.to(sd), u.to(sd), k.to(sd), v.to(sd))
    return y.to(k.dtype)


BACKENDS = {"torch": naive_wkv, "cpu": fused_wkv, "cupy": fused_wkv}


def resolve_backend(backend: str, k: torch.Tensor) -> str:
    """Turn ``backend`` into a runnable backend name for input ``k``."""
    return resolve(backend, k, "k", {"cupy": cupy, "cpu": cpu})


def wkv(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    r"""WKV time mixing over a sequence, from the empty state.

    .. math::
        \mathrm{WKV}_t = \frac{\sum_{i<t} e^{-(t-1-i)w + k_i} v_i + e^{u+k_t} v_t}
                              {\sum_{i<t} e^{-(t-1-i)w + k_i} + e^{u+k_t}}

    Numerically stable for any |k| and any T (running maximum exponent); accumulates in fp32
    (fp64 for fp64 input).

    Args:
        w: decay rate per channel ``[C]``, > 0 (SpikeGPT passes ``exp(time_decay)``).
        u: bonus of the current token per channel ``[C]`` (``time_first``).
        k, v: keys and values ``[B, T, C]``, floating point, same dtype and device.
        backend: ``auto``, ``torch``, ``cpu`` or ``cupy``.

    Returns:
        ``[B, T, C]`` in k's dtype.

    Example:
        >>> y = wkv(torch.ones(8), torch.zeros(8), torch.randn(2, 16, 8), torch.randn(2, 16, 8))
    """
    _check(w, u, k, v)
    return BACKENDS[resolve_backend(backend, k)](w, u, k, v)


def _check(w, u, k, v) -> None:
    for name, x in (("w", w), ("u", u), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {x.dtype}")
        if x.device != k.device:
            raise ValueError(f"{name} must be on {k.device} like k, got {x.device}")
    if k.dim() != 3:
        raise ValueError(f"k must be [B, T, C], got shape {tuple(k.shape)}")
    if v.shape != k.shape or v.dtype != k.dtype:
        raise ValueError(f"v must match k ({tuple(k.shape)}, {k.dtype}), got {tuple(v.shape)}, {v.dtype}")
    for name, x in (("w", w), ("u", u)):
        if x.shape != k.shape[2:]:
            raise ValueError(f"{name} must have shape [C] = {tuple(k.shape[2:])}, got {tuple(x.shape)}")
    for name, x in (("w", w), ("u", u), ("k", k), ("v", v)):
        check_finite(x, name)
