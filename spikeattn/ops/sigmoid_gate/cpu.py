"""Fused CPU kernel of the sigmoid gate's backward: ``cuda/pointwise_host.cpp`` through ctypes (fp32, fp64).

The forward is torch's own ``sigmoid`` and ``mul`` (their bits); the backward is one pass for
``dL/dv = g * s`` and ``dL/dr = ((g * v) * (1 - s)) * s`` with the roundings of autograd's mul and
sigmoid backward, so the gradients are autograd's bits.
"""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import host_availability, load_host_library

DTYPES = {torch.float32: "f32", torch.float64: "f64"}
_P, _I64, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int

is_available = host_availability("pointwise_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry(dtype: torch.dtype):
    fn = getattr(load_host_library("pointwise_host.cpp"), f"sa_sigmoid_gate_backward_{DTYPES[dtype]}")
    fn.argtypes = [_P] * 5 + [_I64, _I]
    fn.restype = None
    return fn


def _check(*xs: torch.Tensor) -> None:
    if xs[0].dtype not in DTYPES or any(t.dtype != xs[0].dtype or t.shape != xs[0].shape for t in xs):
        raise TypeError(f"spikeattn::sigmoid_gate runs on float32 or float64 tensors of one dtype and shape, got "
                        f"{[(t.dtype, tuple(t.shape)) for t in xs]}")


def fused_sigmoid_gate(r: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sigmoid(r) * v, sigmoid(r))``: torch's ops, so the reference's values."""
    _check(r, v)
    s = torch.sigmoid(r)
    return s * v, s


def fused_sigmoid_gate_backward(s: torch.Tensor, v: torch.Tensor, grad: torch.Tensor):
    """``(dL/dr, dL/dv)`` from ``s = sigmoid(r)``, ``v`` and ``dL/dout``."""
    _check(s, v, grad)
    s, v, grad = s.contiguous(), v.contiguous(), grad.contiguous()  # kept in locals: the C code reads them
    gr, gv = torch.empty_like(s), torch.empty_like(v)
    _entry(s.dtype)(s.data_ptr(), v.data_ptr(), grad.data_ptr(), gr.data_ptr(), gv.data_ptr(), s.numel(),
                    torch.get_num_threads())
    return gr, gv


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::sigmoid_gate", "cpu", fused_sigmoid_gate)
torch.library.impl("spikeattn::sigmoid_gate_backward", "cpu", fused_sigmoid_gate_backward)
