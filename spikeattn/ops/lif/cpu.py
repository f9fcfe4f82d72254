"""Fused CPU kernels for the LIF op: ``cuda/lif_host.cpp`` through ctypes.

The C++ side shares its per-step maths with the CUDA kernels (``cuda/lif_core.cuh``);
this file only allocates outputs and passes pointers.
"""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._dtypes import state_dtype
from spikeattn.ops._native import host_availability, load_host_library
from spikeattn.ops.lif.op import SCALAR_TYPES, layout, state_shape

_TAGS = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}
_P, _I64, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
_C_TYPES = {"int": _I, "bool": _I, "float": _D}
# SA_PARAMS_DECL in lif_host.cpp: the decay (a double), then the op's scalars in LIFScalars order.
_PARAM_TYPES = [_D] + [_C_TYPES[t] for t in SCALAR_TYPES]


is_available = host_availability("lif_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry(kind: str, dtype: torch.dtype):
    lib = load_host_library("lif_host.cpp")
    fn = getattr(lib, f"sa_lif_{kind}_{_TAGS[dtype]}")
    pointers = 5 if kind == "forward" else 8
    fn.argtypes = [_P] * pointers + [_I64, _I64, _I64] + _PARAM_TYPES + [_I]  # T, N, M, params, threads
    fn.restype = None
    return fn


def _ptr(t: torch.Tensor):
    return t.data_ptr() if t.numel() else None


def _forward(x, v0, decay, batch_first, scalars, keep_h: bool):
    x, v0 = x.contiguous(), v0.contiguous()  # kept in locals: the C code reads their memory
    sd = state_dtype(x.dtype)  # an empty v0 (from rest) is a null pointer: the kernel starts at v_reset
    spikes, v_last = torch.empty_like(x), torch.empty(state_shape(x.shape, batch_first), dtype=sd)
    h_seq = torch.empty(x.shape, dtype=sd) if keep_h else None  # None: the kernel skips storing h
    T, N, M = layout(x.shape, batch_first)
    _entry("forward", x.dtype)(
        _ptr(x), _ptr(v0), _ptr(spikes), None if h_seq is None else _ptr(h_seq), _ptr(v_last), T, N, M,
        float(decay), *scalars, torch.get_num_threads(),
    )
    return spikes, v_last, h_seq


@torch.library.impl("spikeattn::lif_forward", "cpu")
def fused_lif_forward(x, v0, decay, batch_first, *scalars):
    return _forward(x, v0, decay, batch_first, scalars, keep_h=True)


@torch.library.impl("spikeattn::lif_inference", "cpu")
def fused_lif_inference(x, v0, decay, batch_first, *scalars):
    return _forward(x, v0, decay, batch_first, scalars, keep_h=False)[:2]


@torch.library.impl("spikeattn::lif_backward", "cpu")
def fused_lif_backward(grad_spikes, grad_v, h_seq, x, v0, decay, batch_first, *scalars):
    x, v0 = x.contiguous(), v0.contiguous()
    grad_x = torch.empty_like(grad_spikes)
    grad_v0 = torch.empty_like(grad_v)  # an empty grad_v (zero, no grad_v0 wanted): neither is touched
    grad_k = ctypes.c_double(0.0)
    T, N, M = layout(h_seq.shape, batch_first)
    _entry("backward", grad_spikes.dtype)(
        _ptr(grad_spikes), _ptr(grad_v), _ptr(h_seq), _ptr(x), _ptr(v0), _ptr(grad_x),
        _ptr(grad_v0), ctypes.addressof(grad_k), T, N, M, float(decay), *scalars, torch.get_num_threads(),
    )
    return grad_x, grad_v0, torch.full_like(decay, grad_k.value)
