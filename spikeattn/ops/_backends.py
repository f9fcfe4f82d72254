"""The one rule every op uses to turn ``backend=`` into a runnable backend name."""

from __future__ import annotations

import warnings
from types import ModuleType

import torch

from spikeattn.ops import _native

NAMES = ("torch", "cpu", "cupy")
_DEVICE = {"cpu": "cpu", "cupy": "cuda"}
_MISSING = {
    "cupy": "backend='cupy' needs CuPy and a CUDA GPU: pip install 'spikeattn[cuda]'",
    "cpu": "backend='cpu' needs its C++ kernels built here; use backend='torch' or 'auto'",
}


def resolve(backend: str, x: torch.Tensor, arg: str, fast: dict[str, ModuleType], fast_ok: bool = True) -> str:
    """``auto`` -> the fastest backend that runs on ``x``'s device; anything else is checked.

    Args:
        backend: ``auto``, ``torch``, ``cpu`` or ``cupy``.
        x: an input tensor (its device decides), named ``arg`` in errors.
        fast: ``{"cpu": module, "cupy": module}``, each with ``is_available()``.
        fast_ok: False when the call has no kernel (e.g. a user-defined surrogate): ``auto``
            then means ``torch``.
    """
    if backend not in (*NAMES, "auto"):
        raise ValueError(f"backend must be one of {('auto', *NAMES)}, got {backend!r}")
    if backend == "auto":
        for name, module in fast.items():
            if fast_ok and x.device.type == _DEVICE[name]:
                if module.is_available():
                    return name
                if _build_error(module):
                    _warn_fallback(name, _build_error(module))
        return "torch"
    if backend != "torch":
        if x.device.type != _DEVICE[backend]:
            raise ValueError(f"backend={backend!r} runs on {_DEVICE[backend]} tensors, got {arg} on {x.device}")
        if not fast[backend].is_available():
            reason = _build_error(fast[backend])
            raise RuntimeError(_MISSING[backend] + (f" ({reason}; fix: {_native.FIX})" if reason else ""))
    return backend


def _build_error(module: ModuleType) -> str | None:
    source = getattr(module.is_available, "source", None)  # host-kernel backends (host_availability)
    return _native.build_error(source) if source else None


_WARNED: set[str] = set()  # one fallback warning per backend and process: a model calls several ops per forward


def _warn_fallback(backend: str, reason: str) -> None:
    if backend in _WARNED:
        return
    _WARNED.add(backend)
    warnings.warn(f"spikeattn: the fused {backend} kernels cannot be built here ({reason}); backend='auto' falls back "
                  f"to the torch reference (same results, slower). Fix: {_native.FIX}", RuntimeWarning, stacklevel=4)


def resolve_cpu_fp32(backend: str, x: torch.Tensor, arg: str, cpu: ModuleType, op: str, fast_ok: bool = True) -> str:
    """``resolve`` for an op whose one kernel runs fp32 on the CPU: ``auto`` -> ``cpu`` there, else ``torch``."""
    if backend == "cupy":
        raise ValueError(f"backend='cupy' has no {op} kernel; use 'auto', 'torch' or 'cpu'")
    if backend == "cpu" and x.dtype != torch.float32:
        raise ValueError(f"backend='cpu' needs fp32 {arg}, got {x.dtype}")
    return resolve(backend, x, arg, {"cpu": cpu}, fast_ok=fast_ok and x.dtype == torch.float32)


def resolve_one_dtype(backend: str, x: torch.Tensor, arg: str, others, cpu: ModuleType, min_numel: int) -> str:
    """``resolve`` for a CPU kernel that takes all its tensors in one dtype on one device: ``auto`` -> ``cpu``
    where ``x`` is in ``cpu.DTYPES`` with ``min_numel`` or more elements and ``others`` match it, else ``torch``."""
    fast_ok = (x.dtype in cpu.DTYPES and x.numel() >= min_numel
               and all(t.dtype == x.dtype and t.device == x.device for t in others))
    return resolve(backend, x, arg, {"cpu": cpu}, fast_ok=fast_ok)
