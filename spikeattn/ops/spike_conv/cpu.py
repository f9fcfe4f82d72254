"""Fused CPU kernel of the spike-fed convolution's weight gradient: ``cuda/spike_conv_host.cpp`` through ctypes."""

from __future__ import annotations

import ctypes
import functools
import math

import torch

from spikeattn.ops._native import has_avx512, host_availability, load_host_library
from spikeattn.ops.spike_conv import op as _op  # noqa: F401  (defines the torch.library op)
from spikeattn.ops.spike_conv import patches
from spikeattn.ops.spike_conv.reference import naive_spike_conv_grad_weight

_P, _I64, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
# Above this fraction of listed input entries (nonzeros, or zeros of mostly-one spikes) torch's dense
# backward (oneDNN) is faster than the gather-sum on an AVX-512 CPU (Intel Xeon; benchmarks/bench_spike_grad.py).
MAX_FRACTION = 0.35
# Without AVX-512 (an AMD EPYC with AVX2) the gather-sum took 1.2-3.3x oneDNN's time at every density
# measured, 17% to 50% listed (bench_spike_grad.py, results/spike_grad_cpu_amd.json): the dense backward there.
MAX_FRACTION_AVX2 = 0.0
# There the patches route (``patches.py``: im2col, then the Linear's gather-sum) wins instead, up to 30%
# listed with at least 128 output channels: Spikformer's stem stages 2, 3 and rpe gain 1.24-1.65x, stage 1
# (96 outputs: two blocks of the Linear kernel's 64 lanes, a third of them idle) loses, 0.76-0.87x
# (bench_spike_grad.py, results/spike_grad_cpu_amd.json).
PATCHES_MAX_FRACTION, PATCHES_MIN_OUT = 0.3, 128
# The route's transient memory: 1 byte per patch entry and 4 per listed one (Spikformer-4-384's stage 2 at
# batch 8, T=4: 55 MB). Above this, e.g. an ImageNet-sized stem, the dense backward runs instead.
PATCHES_MAX_BYTES = 512 * 2**20


def max_fraction() -> float:
    """The listed fraction up to which the direct gather-sum kernel runs on this CPU (0: never)."""
    return MAX_FRACTION if has_avx512() else MAX_FRACTION_AVX2


def route(listed: float, out_channels: int, patch_entries: int = 0) -> str:
    """What computes the fp32 weight gradient here: ``direct``, ``patches`` or ``dense`` (torch's backward).

    ``listed``: the fraction of input entries the gather lists; ``patch_entries``: ``N*OH*OW*KH*KW*C``.
    """
    if listed <= max_fraction():
        return "direct"
    fits = patch_entries * (1 + 4 * listed) <= PATCHES_MAX_BYTES
    if listed <= PATCHES_MAX_FRACTION and out_channels >= PATCHES_MIN_OUT and fits:
        return "patches"
    return "dense"


is_available = host_availability("spike_conv_host.cpp")  # builds once; False when it cannot be built here


@functools.lru_cache(maxsize=None)
def _entry():
    fn = load_host_library("spike_conv_host.cpp").sa_spike_conv_grad_weight_f32
    fn.argtypes = [_P, _P, _P] + [_I64] * 19 + [_I, _I, _I]
    fn.restype = _I
    return fn


def plan(x: torch.Tensor) -> tuple[bool, bool, float]:
    """``(binary, complement, listed)``: x holds only 0/1; list its zeros (mostly ones); the fraction listed."""
    n = x.numel()
    nnz = int(torch.count_nonzero(x)) if n else 0
    binary = n == 0 or int(x.max()) <= 1
    complement = binary and 2 * nnz > n
    return binary, complement, ((n - nnz) if complement else nnz) / max(n, 1)


def padding(size: int, out: int, k: int, s: int, p: int, d: int) -> tuple[int, int, int]:
    """``(before, offset, total)`` of grad_y's zero-padded copy along one side: input ``i`` and tap ``r``
    read padded position ``(i + offset - r d) / s``, inside ``[0, total)`` for every ``i`` and ``r``."""
    before = max(0, -(-((k - 1) * d - p) // s))   # ceil(((k-1)d - p) / s), at least 0
    offset = p + before * s
    return before, offset, max(before + out, (size - 1 + offset) // s + 1)


@torch.library.impl("spikeattn::spike_conv_grad_weight", "cpu")
def fused_spike_conv_grad_weight(grad_y, x, weight_size, stride, padding_, dilation):
    binary, complement, listed = plan(x)
    entries = grad_y.shape[0] * grad_y.shape[2] * grad_y.shape[3] * math.prod(weight_size[1:])
    way = route(listed, weight_size[0], entries) if grad_y.dtype == torch.float32 else "dense"
    if way == "dense":
        return naive_spike_conv_grad_weight(grad_y, x, weight_size, stride, padding_, dilation)
    if way == "patches":
        return patches.grad_weight(grad_y, x, list(weight_size), stride, padding_, dilation, complement)
    grad_y, x = grad_y.contiguous(), x.contiguous()  # kept in locals: the C code reads their memory
    (n, c, h, w), (o, _, kh, kw), (oh, ow) = x.shape, weight_size, grad_y.shape[2:]
    top, offh, hp = padding(h, oh, kh, stride[0], padding_[0], dilation[0])
    left, offw, wp = padding(w, ow, kw, stride[1], padding_[1], dilation[1])
    grad_w = grad_y.new_empty(list(weight_size))
    if grad_w.numel() == 0:
        return grad_w
    done = _entry()(grad_y.data_ptr(), x.data_ptr(), grad_w.data_ptr(), n, c, h, w, o, oh, ow, hp, wp, top, left,
                    kh, kw, stride[0], stride[1], offh, offw, dilation[0], dilation[1], int(binary), int(complement),
                    torch.get_num_threads())
    return grad_w if done else naive_spike_conv_grad_weight(grad_y, x, weight_size, stride, padding_, dilation)
