"""Fused CPU kernel of the spike weight gradient: ``cuda/spike_linear_host.cpp`` through ctypes."""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import has_avx512, host_availability, load_host_library
from spikeattn.ops.linear import linear, onednn
from spikeattn.ops.spike_linear import op as _op  # noqa: F401  (defines the torch.library op)

_P, _I64, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
# Above this fraction of listed entries (nonzeros, or zeros of mostly-one spikes) a dense GEMM is
# faster than the gather-sum (M=2048, I=384: near 30% on AVX2 against MKL, 30-40% on AVX-512 against oneDNN).
MAX_FRACTION = 0.3
# ... except against MKL with AVX-512 (the dense GEMM where oneDNN does not pay off: Intel) with wide
# inputs: on an Intel Xeon (AVX-512), M=2048, I=1536, O=384 (Spikformer's fc2) gains 1.3-2.1x at 10% but
# 0.7-1.2x at 20% (two runs, 1 and 2 threads), while I=384 still gains at 30% on one thread
# (benchmarks/bench_spike_grad.py, results/spike_grad_cpu.json). Against MKL on AVX2 (an AMD EPYC without
# AVX-512) fc2 still gains 1.7-2.0x at 30% (results/spike_grad_cpu_amd.json): 30% there.
MAX_FRACTION_MKL_WIDE, WIDE = 0.15, 512


def max_fraction(in_features: int) -> float:
    """The listed fraction above which the weight gradient of ``in_features`` inputs takes the dense GEMM."""
    fast_mkl = has_avx512() and not onednn.pays_off()
    return MAX_FRACTION_MKL_WIDE if in_features > WIDE and fast_mkl else MAX_FRACTION


is_available = host_availability("spike_linear_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry():
    fn = load_host_library("spike_linear_host.cpp").sa_spike_grad_weight_f32
    fn.argtypes = [_P, _P, _P, _I64, _I64, _I64, _I64, ctypes.c_double, _I]
    fn.restype = _I
    return fn


@functools.lru_cache(maxsize=None)
def _to_uint8_entry():
    fn = load_host_library("spike_linear_host.cpp").sa_to_uint8_f32
    fn.argtypes = [_P, _P, _I64, _I]
    fn.restype = _I
    return fn


def to_uint8_exact(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` (fp32, CPU) as uint8 when every value is an integer 0..255, else None; one pass."""
    x = x.contiguous()
    small = torch.empty(x.shape, dtype=torch.uint8)
    if x.numel() and not _to_uint8_entry()(x.data_ptr(), small.data_ptr(), x.numel(), torch.get_num_threads()):
        return None
    return small


@torch.library.impl("spikeattn::spike_grad_weight", "cpu")
def fused_spike_grad_weight(grad_y, x):
    grad_y, x = grad_y.contiguous(), x.contiguous()  # kept in locals: the C code reads their memory
    (m, o), i = grad_y.shape, x.shape[1]
    grad_w = torch.empty((o, i), dtype=grad_y.dtype)
    if grad_w.numel() == 0 or m == 0:
        return grad_w.zero_()
    done = _entry()(grad_y.data_ptr(), x.data_ptr(), grad_w.data_ptr(), m, o, i, 1, max_fraction(i),
                    torch.get_num_threads())
    return grad_w if done else linear(grad_y.T, x.to(grad_y.dtype).T)  # dense: oneDNN's GEMM where it runs


def grad_weight_per_position(grad_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The gather-sum at any density from a convolution's fp32 ``grad_y [N, O, P]`` as it is (P positions per
    sample; token ``m`` is sample ``m // P``, position ``m % P``) and uint8 ``x [N * P, I]``: ``[O, I]``."""
    grad_y, x = grad_y.contiguous(), x.contiguous()  # kept in locals: the C code reads their memory
    (n, o, p), i = grad_y.shape, x.shape[1]
    grad_w = torch.empty((o, i), dtype=grad_y.dtype)
    if grad_w.numel() == 0 or n * p == 0:
        return grad_w.zero_()
    _entry()(grad_y.data_ptr(), x.data_ptr(), grad_w.data_ptr(), n * p, o, i, p, 1.0, torch.get_num_threads())
    return grad_w
