"""Fused CPU kernels of the SSA core: ``cuda/ssa_host.cpp`` through ctypes (fp32 only)."""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import host_availability, load_host_library
from spikeattn.ops.ssa.op import bits_shape

_P, _I64, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double


is_available = host_availability("ssa_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry(kind: str):
    fn = getattr(load_host_library("ssa_host.cpp"), f"sa_ssa_{kind}_f32")
    fn.argtypes = [_P, _P, _P, _I64, _I64, _I64, _I64, _D, _I]
    fn.restype = None
    return fn


def _dims(shape, heads):
    *lead, n, c3 = shape
    return shape.numel() // (n * c3) if n * c3 else 0, n, heads, c3 // 3 // heads


@torch.library.impl("spikeattn::ssa_forward", "cpu")
def fused_ssa_forward(qkv, heads, scale):
    qkv = qkv.contiguous()  # kept in a local: the C code reads its memory
    out = qkv.new_empty((*qkv.shape[:-1], qkv.shape[-1] // 3))
    bits = torch.empty(bits_shape(qkv.shape, heads), dtype=torch.int64)
    if out.numel():
        _entry("forward")(qkv.data_ptr(), out.data_ptr(), bits.data_ptr(), *_dims(qkv.shape, heads), scale,
                          torch.get_num_threads())
    return out, bits


@torch.library.impl("spikeattn::ssa_backward", "cpu")
def fused_ssa_backward(grad_out, bits, heads, scale):
    grad_out = grad_out.contiguous()
    grad_qkv = grad_out.new_empty((*grad_out.shape[:-1], 3 * grad_out.shape[-1]))
    if grad_qkv.numel():
        _entry("backward")(grad_out.data_ptr(), bits.data_ptr(), grad_qkv.data_ptr(),
                           *_dims(grad_qkv.shape, heads), scale, torch.get_num_threads())
    return grad_qkv
