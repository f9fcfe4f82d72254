"""Fused CPU kernels of the token mix: ``cuda/token_mix_host.cpp`` through ctypes (fp32, fp64)."""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import host_availability, load_host_library

DTYPES = {torch.float32: "f32", torch.float64: "f64"}
_P, _I64, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int

is_available = host_availability("token_mix_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry(kind: str, dtype: torch.dtype):
    fn = getattr(load_host_library("token_mix_host.cpp"), f"sa_token_mix_{kind}_{DTYPES[dtype]}")
    fn.argtypes = [_P] * (3 if kind == "forward" else 5) + [_I64] * 4 + [_I]
    fn.restype = None
    return fn


def _pointers(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


def _check(x: torch.Tensor, mixes: torch.Tensor) -> None:
    if x.dtype not in DTYPES or mixes.dtype != x.dtype:
        raise TypeError(f"spikeattn::token_mix runs on float32 or float64 x and mixes of x's dtype, "
                        f"got {x.dtype} and {mixes.dtype}")


def fused_token_mix(x: torch.Tensor, mixes: torch.Tensor) -> list[torch.Tensor]:
    """M tensors ``[B, T, C]``; see ``reference.naive_token_mix``."""
    _check(x, mixes)
    x, mixes = x.contiguous(), mixes.contiguous()  # kept in locals: the C code reads their memory
    out = [torch.empty_like(x) for _ in range(mixes.shape[0])]
    B, T, C = x.shape
    if x.numel() and out:
        _entry("forward", x.dtype)(x.data_ptr(), mixes.data_ptr(), _pointers(out), len(out), B, T, C,
                                   torch.get_num_threads())
    return out


def fused_token_mix_backward(x: torch.Tensor, mixes: torch.Tensor, grads: list[torch.Tensor]):
    """``(dL/dx [B, T, C], dL/dmixes [M, C])`` from the M output gradients."""
    _check(x, mixes)
    x, mixes = x.contiguous(), mixes.contiguous()
    grads = [g.contiguous() for g in grads]
    B, T, C = x.shape
    units = B * -(-T // 64)  # TBLOCK in token_mix_host.cpp
    gx = torch.empty_like(x)
    # [units, M, C] partials, summed in unit order; the kernel zeroes them (an empty x or M = 0: none exist)
    gm = torch.empty(units, *mixes.shape, dtype=torch.float64)
    if x.numel() and grads:
        _entry("backward", x.dtype)(x.data_ptr(), mixes.data_ptr(), _pointers(grads), gx.data_ptr(),
                                    gm.data_ptr(), len(grads), B, T, C, torch.get_num_threads())
    elif x.numel():
        gx.zero_()
    return gx, gm.sum(0).to(x.dtype)


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::token_mix", "cpu", fused_token_mix)
torch.library.impl("spikeattn::token_mix_backward", "cpu", fused_token_mix_backward)
