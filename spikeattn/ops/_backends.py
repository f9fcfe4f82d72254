"""The one rule every op uses to turn ``backend=`` into a runnable backend name."""

from __future__ import annotations

from types import ModuleType

import torch

NAMES = ("torch", "cpu", "cupy")
_DEVICE = {"cpu": "cpu", "cupy": "cuda"}
_MISSING = {
    "cupy": "backend='cupy' needs CuPy and a CUDA GPU: pip install 'spikeattn[cuda]'",
    "cpu": "backend='cpu' needs a C++ compiler (g++) to build its kernel; use backend='torch'",
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
            if fast_ok and x.device.type == _DEVICE[name] and module.is_available():
                return name
        return "torch"
    if backend != "torch":
        if x.device.type != _DEVICE[backend]:
            raise ValueError(f"backend={backend!r} runs on {_DEVICE[backend]} tensors, got {arg} on {x.device}")
        if not fast[backend].is_available():
            raise RuntimeError(_MISSING[backend])
    return backend
