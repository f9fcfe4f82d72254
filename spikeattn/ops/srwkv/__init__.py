"""SpikeGPT's time-mix core ``Wo(sigmoid(xr Wr^T) * WKV(w, u, xk Wk^T, xv Wv^T))``: the public op and its
backend table.

Backends: ``torch`` (``naive_srwkv``: four ``F.linear``, the WKV torch loop, the sigmoid gate; any device and
dtype) and ``cpu`` (one registered op forward and one backward: the same GEMMs and the WKV CPU kernels, its
pointwise steps in place; the bits of the separate ops with WKV on ``cpu``; see ``cpu.py``). ``auto`` picks
``cpu`` for fp32/fp64 CPU tensors with at least ``MIN_FUSED_NUMEL`` elements in ``xk`` where the kernels
build, else ``torch``.
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve_one_dtype
from spikeattn.ops.relu_square import MIN_FUSED_NUMEL
from spikeattn.ops.srwkv import cpu
from spikeattn.ops.srwkv import op as _op  # noqa: F401  (defines the torch.library ops)
from spikeattn.ops.srwkv.reference import naive_srwkv

__all__ = ["srwkv", "naive_srwkv", "BACKENDS", "resolve_backend"]


def fused_srwkv(*tensors):
    return torch.ops.spikeattn.srwkv(*tensors)[0]


BACKENDS = {"torch": naive_srwkv, "cpu": fused_srwkv}


def resolve_backend(backend: str, xk: torch.Tensor, *others: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32/fp64 CPU tensors of one dtype and device with ``MIN_FUSED_NUMEL`` or more
    elements in ``xk``, else ``torch``."""
    return resolve_one_dtype(backend, xk, "xk", others, cpu, MIN_FUSED_NUMEL)


def srwkv(xk: torch.Tensor, xv: torch.Tensor, xr: torch.Tensor, w: torch.Tensor, u: torch.Tensor,
          key_weight: torch.Tensor, value_weight: torch.Tensor, receptance_weight: torch.Tensor,
          output_weight: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    r"""SpikeGPT's time mix after its token shift: ``Wo(sigmoid(xr Wr^T) * WKV(w, u, xk Wk^T, xv Wv^T))``.

    Args:
        xk, xv, xr: ``[B, T, C]`` (the key, value and receptance mixes of the input).
        w, u: the WKV decay rate (> 0) and bonus ``[A]`` (``spikeattn.ops.wkv.wkv``).
        key_weight, value_weight, receptance_weight ``[A, C]``, output_weight ``[O, A]``: bias-free Linear weights.
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``[B, T, O]``. ``cpu``: the bits of the separate ops with WKV's CPU kernel, gradients too; ``torch``
        runs the WKV torch loop (the two agree to fp32 rounding, see ``spikeattn.ops.wkv``).
    """
    tensors = {"xk": xk, "xv": xv, "xr": xr, "w": w, "u": u, "key_weight": key_weight, "value_weight": value_weight,
               "receptance_weight": receptance_weight, "output_weight": output_weight}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    backend = resolve_backend(backend, *tensors.values())
    if backend == "cpu":
        cpu.check(*tensors.values())
    return BACKENDS[backend](*tensors.values())
