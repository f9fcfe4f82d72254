"""Fused CPU kernels of relu^2: ``cuda/pointwise_host.cpp`` through ctypes (fp32, fp64).

One pass forward (``y = r * r``, ``r = max(x, 0)``) and one backward (``(g * r) * 2``) with the roundings
of the torch ops they replace: the values and gradients of autograd through ``square(relu(x))``, bit for bit.
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
def _entry(kind: str, dtype: torch.dtype):
    fn = getattr(load_host_library("pointwise_host.cpp"), f"sa_relu_square_{kind}_{DTYPES[dtype]}")
    fn.argtypes = [_P] * (2 if kind == "forward" else 3) + [_I64, _I]
    fn.restype = None
    return fn


def _check(*xs: torch.Tensor) -> None:
    if xs[0].dtype not in DTYPES or any(t.dtype != xs[0].dtype or t.shape != xs[0].shape for t in xs):
        raise TypeError(f"spikeattn::relu_square runs on float32 or float64 tensors of one dtype and shape, got "
                        f"{[(t.dtype, tuple(t.shape)) for t in xs]}")


def fused_relu_square(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)^2``; see ``reference.naive_relu_square``."""
    _check(x)
    x = x.contiguous()  # kept in a local: the C code reads its memory
    y = torch.empty_like(x)
    _entry("forward", x.dtype)(x.data_ptr(), y.data_ptr(), x.numel(), torch.get_num_threads())
    return y


def fused_relu_square_backward(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``dL/dx = (dL/dy * relu(x)) * 2``."""
    _check(x, grad)
    x, grad = x.contiguous(), grad.contiguous()
    gx = torch.empty_like(x)
    _entry("backward", x.dtype)(x.data_ptr(), grad.data_ptr(), gx.data_ptr(), x.numel(), torch.get_num_threads())
    return gx


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::relu_square", "cpu", fused_relu_square)
torch.library.impl("spikeattn::relu_square_backward", "cpu", fused_relu_square_backward)
