"""CUDA kernels for the WKV op through CuPy (``cuda/wkv.cu``).

Registers ``spikeattn::wkv_forward`` / ``wkv_backward`` for CUDA tensors, mirroring ``cpu.py``: same
outputs, dtypes and shapes. Outputs are allocated by torch and the kernels run on torch's current
stream. Importing this module does not import CuPy (only calling a kernel does).
"""

from __future__ import annotations

import numpy as np
import torch

from spikeattn.ops import _cuda
from spikeattn.ops._cuda import is_available  # re-exported: the backend table asks each backend

BLOCK = _cuda.BLOCK
_F = {torch.float32: "float", torch.float64: "double"}


def kernel_name(kind: str, dtype: torch.dtype) -> str:
    """Name expression of one instantiation, e.g. ``wkv_forward_kernel<float>``."""
    if dtype not in _F:
        raise TypeError(f"spikeattn::wkv runs on float32 or float64, got {dtype}")
    return f"wkv_{kind}_kernel<{_F[dtype]}>"


NAME_EXPRESSIONS = tuple(f"wkv_{kind}_kernel<{f}>" for kind in ("forward", "backward") for f in _F.values())



def _launch(name: str, grid: int, block: int, args: tuple, device: torch.device) -> None:
    # A module-level hook: the host-emulation tests swap it for a CPU run of the same kernels.
    _cuda.launch("wkv.cu", NAME_EXPRESSIONS, name, grid, block, args, device)


def _alloc(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # One place for output allocation, so tests can poison it with NaN.
    return torch.empty(shape, dtype=dtype, device=device)


_ptr = _cuda.pointer


def _grid(threads: int) -> int:  # a hook too: a test shortens it to prove outputs are checked
    return _cuda.blocks(threads)


def cuda_wkv_forward(w, u, k, v):
    """Returns ``(y [B, T, C], lse [B, T, C])`` in k's dtype."""
    w, u, k, v = (x.contiguous() for x in (w, u, k, v))
    B, T, C = k.shape
    y, lse = _alloc(k.shape, k.dtype, k.device), _alloc(k.shape, k.dtype, k.device)
    if k.numel():
        args = (*map(_ptr, (w, u, k, v, y, lse)), np.int64(B), np.int64(T), np.int64(C))
        _launch(kernel_name("forward", k.dtype), _grid(B * C), BLOCK, args, k.device)
    return y, lse


def cuda_wkv_backward(w, u, k, v, y, lse, gy):
    """Returns ``(gw [C], gu [C], gk [B, T, C], gv [B, T, C])``."""
    w, u, k, v, y, lse, gy = (x.contiguous() for x in (w, u, k, v, y, lse, gy))
    B, T, C = k.shape
    gw, gu = _alloc((B, C), k.dtype, k.device), _alloc((B, C), k.dtype, k.device)
    gk, gv = _alloc(k.shape, k.dtype, k.device), _alloc(k.shape, k.dtype, k.device)
    if k.numel():
        args = (*map(_ptr, (w, u, k, v, y, lse, gy, gw, gu, gk, gv)), np.int64(B), np.int64(T), np.int64(C))
        _launch(kernel_name("backward", k.dtype), _grid(B * C), BLOCK, args, k.device)
    else:
        gw.zero_(), gu.zero_()
    return gw.sum(0), gu.sum(0), gk, gv


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::wkv_forward", "cuda", cuda_wkv_forward)
torch.library.impl("spikeattn::wkv_backward", "cuda", cuda_wkv_backward)
