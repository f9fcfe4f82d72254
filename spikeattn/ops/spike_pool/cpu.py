"""Fused CPU kernels of the max-pool: ``cuda/spike_pool_host.cpp`` through ctypes (fp32)."""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import host_availability, load_host_library
from spikeattn.ops.spike_pool.op import out_shape

_P, _I64, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int

is_available = host_availability("spike_pool_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry(kind: str):
    fn = getattr(load_host_library("spike_pool_host.cpp"), f"sa_spike_pool_{kind}_f32")
    fn.argtypes = [_P] * 3 + [_I64] * 5 + [_I] * 4  # pointers, planes, H, W, H', W', k, s, p, threads
    fn.restype = None
    return fn


def _check(x: torch.Tensor, name: str) -> None:
    if x.dtype != torch.float32 or x.dim() != 4:
        raise TypeError(f"spikeattn::spike_pool runs on float32 [N, C, H, W], got {name} {x.dtype} of shape {tuple(x.shape)}")


def _run(x: torch.Tensor, kernel_size: int, stride: int, padding: int, where: bool):
    _check(x, "x")
    x = x.contiguous()  # kept in a local: the C code reads its memory
    y = x.new_empty(out_shape(x.shape, kernel_size, stride, padding))
    w = torch.empty(y.shape, dtype=torch.uint8) if where else None
    if y.numel():
        _entry("forward")(x.data_ptr(), y.data_ptr(), w.data_ptr() if where else None, x.shape[0] * x.shape[1],
                          *x.shape[2:], *y.shape[2:], kernel_size, stride, padding, torch.get_num_threads())
    return y, w


def fused_spike_pool(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """``[N, C, H, W] -> [N, C, H', W']``; see ``reference.naive_spike_pool``."""
    return _run(x, kernel_size, stride, padding, where=False)[0]


def fused_spike_pool_where(x: torch.Tensor, kernel_size: int, stride: int, padding: int):
    """The pooled values and each output's chosen cell (uint8 offset in its window)."""
    return _run(x, kernel_size, stride, padding, where=True)


def fused_spike_pool_backward(grad_out: torch.Tensor, where: torch.Tensor, height: int, width: int,
                              kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """``dL/dx [N, C, height, width]``: each output's gradient added into its chosen cell."""
    _check(grad_out, "grad_out")
    grad_out, where = grad_out.contiguous(), where.contiguous()
    grad_x = grad_out.new_empty((*grad_out.shape[:2], height, width))
    if grad_out.numel():
        _entry("backward")(grad_out.data_ptr(), where.data_ptr(), grad_x.data_ptr(), grad_x.shape[0] * grad_x.shape[1],
                           height, width, *grad_out.shape[2:], kernel_size, stride, padding, torch.get_num_threads())
    else:
        grad_x.zero_()  # N or C is 0: an empty tensor either way
    return grad_x


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::spike_pool", "cpu", fused_spike_pool)
torch.library.impl("spikeattn::spike_pool_where", "cpu", fused_spike_pool_where)
torch.library.impl("spikeattn::spike_pool_backward", "cpu", fused_spike_pool_backward)
