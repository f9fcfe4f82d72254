"""fp32 CPU Linear on oneDNN, through the op torch's own CPU compiler (inductor) emits for it.

Why: the x86 CPU wheels send fp32 matmuls to MKL, which on this project's AMD EPYC VM reaches
~100 GFLOP/s on one core against oneDNN's 220-240 at Spikformer-4-384 sizes
(``benchmarks/bench_linear.py``, ``benchmarks/results/linear_cpu.json``). Inputs may be strided (transposes
are read in place); the summation order differs from MKL's, so results agree to fp32 rounding.
"""

from __future__ import annotations

import functools

import torch
from torch.utils._python_dispatch import _disable_current_modes

from spikeattn.ops._native import cpu_vendor, has_avx512


@functools.lru_cache(maxsize=None)
def is_available() -> bool:
    """oneDNN is built in and this torch has the op (it is not public API: checked once, by running it)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    try:
        # The first call may come from inside a dispatch mode (spikeattn.opcount): keep the probe out of it.
        with _disable_current_modes():
            x, w = torch.ones(2, 3), torch.ones(4, 3)
            return torch.equal(_call(x, w, None), torch.full((2, 4), 3.0))
    except (RuntimeError, NotImplementedError):
        return False


def pays_off() -> bool:
    """Whether oneDNN's fp32 GEMM beats MKL's here: on AMD CPUs with AVX-512 (MKL keeps to AVX2 off Intel).

    Measured by ``benchmarks/bench_linear.py`` at Spikformer-4-384 sizes, one thread: an AMD EPYC with
    AVX-512, oneDNN 2.2-2.4x MKL (``results/linear_cpu.json``); an AMD EPYC with AVX2 only, 0.73-0.97x
    (``results/linear_cpu_amd_avx2.json``: both libraries near the core's AVX2 peak); Intel Xeon (AVX-512),
    0.82-0.97x (``results/linear_cpu_intel.json``). Elsewhere (other vendors, no /proc/cpuinfo) torch's own
    choice stays.
    """
    return cpu_vendor() == "AuthenticAMD" and has_avx512()


def _call(x, weight, bias):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ W^T + b`` for fp32 CPU tensors; no autograd (call it where gradients are not tracked)."""
    return _call(x, weight, bias)
