"""Fused CPU kernels for the WKV op: ``cuda/wkv_host.cpp`` through ctypes.

The C++ side shares its per-token maths with the CUDA kernels (``cuda/wkv_core.cuh``); this file only
allocates outputs, passes pointers and sums the per-batch partial gradients of w and u.
"""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import host_availability, load_host_library

_TAGS = {torch.float32: "f32", torch.float64: "f64"}
_P, _I64, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int


is_available = host_availability("wkv_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry(kind: str, dtype: torch.dtype, vector_math: bool):
    lib = load_host_library("wkv_host.cpp", vector_math)
    fn = getattr(lib, f"sa_wkv_{kind}_{_TAGS[dtype]}")
    fn.argtypes = [_P] * (6 if kind == "forward" else 11) + [_I64, _I64, _I64, _I]
    fn.restype = None
    return fn


def vector_math() -> bool:
    """True when the kernels' exp/log run on libmvec's vector functions here (``cuda/vector_math.h``)."""
    return bool(load_host_library("wkv_host.cpp").sa_wkv_vector_math())


def _ptr(t: torch.Tensor):
    return t.data_ptr() if t.numel() else None


def _check_dtype(k: torch.Tensor) -> None:
    if k.dtype not in _TAGS:
        raise TypeError(f"spikeattn::wkv runs on float32 or float64, got {k.dtype}")


def fused_wkv_forward(w, u, k, v, vector_math: bool = True):
    """``(y, lse)``, both [B, T, C]; ``vector_math=False`` runs the build without libmvec."""
    _check_dtype(k)
    w, u, k, v = (x.contiguous() for x in (w, u, k, v))  # kept in locals: the C code reads their memory
    y, lse = torch.empty_like(k), torch.empty_like(k)
    B, T, C = k.shape
    if y.numel():
        _entry("forward", k.dtype, vector_math)(*map(_ptr, (w, u, k, v, y, lse)), B, T, C, torch.get_num_threads())
    return y, lse


def fused_wkv_backward(w, u, k, v, y, lse, gy, vector_math: bool = True, gv_over_gy: bool = False):
    """``(gw [C], gu [C], gk, gv)``; ``vector_math=False`` runs the build without libmvec.

    ``gv_over_gy``: dL/dv is written over a contiguous ``gy`` (the kernel's reverse sweep reads each
    gy[t] before it writes gv[t] there), for a caller that owns ``gy`` and needs it no more.
    """
    _check_dtype(k)
    if gv_over_gy and not gy.is_contiguous():
        raise ValueError("gv_over_gy writes dL/dv over gy: gy must be contiguous")
    w, u, k, v, y, lse, gy = (x.contiguous() for x in (w, u, k, v, y, lse, gy))
    B, T, C = k.shape
    # every element is written by the kernel (gw, gu: one partial per (b, c)); zeros only for empty input
    alloc = torch.empty if k.numel() else torch.zeros
    gw, gu = alloc(B, C, dtype=k.dtype), alloc(B, C, dtype=k.dtype)
    gk, gv = torch.empty_like(k), gy if gv_over_gy else torch.empty_like(v)
    if k.numel():
        _entry("backward", k.dtype, vector_math)(
            *map(_ptr, (w, u, k, v, y, lse, gy, gw, gu, gk, gv)), B, T, C, torch.get_num_threads()
        )
    return gw.sum(0), gu.sum(0), gk, gv


# Registered without the decorator form, which returns None: tests and benchmarks call the functions.
torch.library.impl("spikeattn::wkv_forward", "cpu", fused_wkv_forward)
torch.library.impl("spikeattn::wkv_backward", "cpu", fused_wkv_backward)
