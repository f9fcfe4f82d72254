"""CUDA kernels for the LIF op through CuPy (``cuda/lif.cu``)."""

from __future__ import annotations

import torch


@torch.compiler.assume_constant_result  # a fact of the machine: torch.compile bakes it in
def is_available() -> bool:
    """True when CuPy imports and sees a GPU."""
    try:
        import cupy  # noqa: F401  (optional dependency, imported only when asked for)
    except ImportError:
        return False
    return cupy.cuda.runtime.getDeviceCount() > 0
