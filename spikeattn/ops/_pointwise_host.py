"""The one loader of ``cuda/pointwise_host.cpp``, whose elementwise kernels serve two ops
(``ops/relu_square`` and ``ops/sigmoid_gate``): availability, ctypes entry points, the dtype check."""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import host_availability, load_host_library

DTYPES = {torch.float32: "f32", torch.float64: "f64"}

is_available = host_availability("pointwise_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def entry(name: str, dtype: torch.dtype, pointers: int):
    """``sa_<name>_<f32|f64>(pointers..., int64 n, int nthreads)`` of the library."""
    fn = getattr(load_host_library("pointwise_host.cpp"), f"sa_{name}_{DTYPES[dtype]}")
    fn.argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64, ctypes.c_int]
    fn.restype = None
    return fn


def run(name: str, *tensors: torch.Tensor) -> None:
    """Call kernel ``name`` on contiguous tensors of one dtype and shape (inputs, then outputs)."""
    entry(name, tensors[0].dtype, len(tensors))(*(t.data_ptr() for t in tensors), tensors[0].numel(),
                                                torch.get_num_threads())


def check(op: str, *xs: torch.Tensor) -> None:
    """TypeError unless ``xs`` are float32 or float64 tensors of one dtype and shape."""
    if xs[0].dtype not in DTYPES or any(t.dtype != xs[0].dtype or t.shape != xs[0].shape for t in xs):
        raise TypeError(f"spikeattn::{op} runs on float32 or float64 tensors of one dtype and shape, got "
                        f"{[(t.dtype, tuple(t.shape)) for t in xs]}")
