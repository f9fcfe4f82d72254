"""Eval-mode BatchNorm then LIF in one pass, for inference: ``spikeattn::bn_lif_inference``.

A frozen BatchNorm is a per-channel ``x * alpha + beta``; the LIF kernel applies it as it reads its
input, so the normalised map is never written and read back. Its bits are ATen's: the kernel forms
alpha and beta as ``batch_norm_cpu_collect_linear_and_constant_terms`` does and rounds
``x * alpha + beta`` once (an fma, as ATen's compiled loop does). ``exact_here()`` checks that
against ``F.batch_norm`` on this machine once; callers use the op only where it holds.
"""

from __future__ import annotations

import ctypes
import functools
import math

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes

from spikeattn.functional.neuron import CHARGE_IF, LIFParameters
from spikeattn.ops.lif import cpu, lif_multi_step
from spikeattn.ops.lif.cpu import _PARAM_TYPES, _ptr
from spikeattn.ops._native import load_host_library
from spikeattn.ops.lif.op import SCALARS, LIFScalars
from spikeattn.surrogate import ATan

__all__ = ["bn_lif_inference", "reference_bn_lif", "exact_here"]

torch.library.define(
    "spikeattn::bn_lif_inference",
    "(Tensor x, Tensor running_mean, Tensor running_var, Tensor? weight, Tensor? bias, float eps, int channel_dim, "
    f"float decay, {SCALARS}) -> (Tensor, Tensor)",
)


# The same, writing each spike over the input it came from: returns v_last. For an input nobody reads
# afterwards (a layer's own GEMM or conv output), it saves the output's memory stream.
# (The scalar `mode` is named charge_mode here: functionalization of a mutating op passes a `mode` of its own.)
torch.library.define(
    "spikeattn::bn_lif_inference_",
    "(Tensor(a!) x, Tensor running_mean, Tensor running_var, Tensor? weight, Tensor? bias, float eps, "
    f"int channel_dim, float decay, {SCALARS.replace('int mode', 'int charge_mode')}) -> Tensor",
)


@torch.library.register_fake("spikeattn::bn_lif_inference")
def _fake(x, running_mean, running_var, weight, bias, eps, channel_dim, decay, *scalars):
    return torch.empty_like(x), x.new_empty(x.shape[1:])


@torch.library.register_fake("spikeattn::bn_lif_inference_")
def _fake_(x, running_mean, running_var, weight, bias, eps, channel_dim, decay, *scalars):
    return x.new_empty(x.shape[1:])


@functools.lru_cache(maxsize=None)
def _entry():
    fn = load_host_library("lif_host.cpp").sa_lif_bn_inference_f32
    _P, _I64 = ctypes.c_void_p, ctypes.c_int64
    fn.argtypes = [_P] * 4 + [_I64, _I64] + [_P] * 4 + [ctypes.c_double, _I64, _I64] + _PARAM_TYPES + [ctypes.c_int]
    fn.restype = None
    return fn


@torch.library.impl("spikeattn::bn_lif_inference", "cpu")
def _cpu(x, running_mean, running_var, weight, bias, eps, channel_dim, decay, *scalars):
    spikes = torch.empty_like(x, memory_format=torch.contiguous_format)
    return spikes, _run(x.contiguous(), spikes, running_mean, running_var, weight, bias, eps, channel_dim, decay, scalars)


@torch.library.impl("spikeattn::bn_lif_inference_", "cpu")
def _cpu_(x, running_mean, running_var, weight, bias, eps, channel_dim, decay, *scalars):
    if not x.is_contiguous():
        raise ValueError(f"bn_lif_inference_ writes the spikes over x in place: x must be contiguous, got strides {x.stride()}")
    return _run(x, x, running_mean, running_var, weight, bias, eps, channel_dim, decay, scalars)


def _run(x, spikes, running_mean, running_var, weight, bias, eps, channel_dim, decay, scalars):
    """The kernel on contiguous ``x``, spikes into ``spikes`` (``x`` itself: in place); returns v_last."""
    if x.dtype != torch.float32 or any(t is not None and t.dtype != torch.float32
                                       for t in (running_mean, running_var, weight, bias)):
        given = ", ".join(f"{n} {t.dtype}" for n, t in (("x", x), ("running_mean", running_mean), ("running_var", running_var),
                                                      ("weight", weight), ("bias", bias)) if t is not None)
        raise TypeError(f"bn_lif_inference runs fp32 input and BatchNorm tensors, got {given}")
    # kept in locals: the C code reads their memory
    mean, var = running_mean.contiguous(), running_var.contiguous()
    weight, bias = (None if t is None else t.contiguous() for t in (weight, bias))
    v_last = x.new_empty(x.shape[1:])
    inner = math.prod(x.shape[channel_dim + 1:])  # neurons per channel run
    _entry()(_ptr(x), None, _ptr(spikes), _ptr(v_last), x.shape[0], v_last.numel(),
             _ptr(mean), _ptr(var), None if weight is None else _ptr(weight), None if bias is None else _ptr(bias),
             float(eps), x.shape[channel_dim], inner, float(decay), *scalars, torch.get_num_threads())
    return v_last


def bn_lif_inference(x: torch.Tensor, bn: torch.nn.modules.batchnorm._BatchNorm, p: LIFParameters,
                     channel_dim: int, overwrite: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``LIF(BN_eval(x))`` from rest: ``x [T, B, ...]`` fp32 on the CPU, BN's channels at ``channel_dim`` (>= 2).

    Returns ``(spikes like x, v_last [B, ...])``, bit for bit ``reference_bn_lif`` where ``exact_here()``.
    ``overwrite=True`` writes the spikes over a contiguous ``x`` and returns ``x`` as the spikes (for an
    input nobody reads afterwards; a non-contiguous ``x`` is left alone and the spikes are new).
    No autograd: call it where nothing records (inference). ``p.decay`` must be a number (not PLIF's tensor).
    """
    if not (x.dim() > channel_dim >= 2 and x.shape[channel_dim] == bn.num_features):
        raise ValueError(f"x {tuple(x.shape)} must be [T, B, ...] with BN's {bn.num_features} channels at dim {channel_dim}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn_lif_inference needs a BatchNorm with running statistics (track_running_stats=True)")
    args = (bn.running_mean, bn.running_var, bn.weight, bn.bias, float(bn.eps), channel_dim, float(p.decay),
            *LIFScalars.of(p))
    if overwrite and x.is_contiguous():
        return x, torch.ops.spikeattn.bn_lif_inference_(x, *args)
    return torch.ops.spikeattn.bn_lif_inference(x, *args)


def reference_bn_lif(x, bn, p: LIFParameters, channel_dim: int):
    """The oracle: ``F.batch_norm`` in eval mode on ``x`` folded to ``[T*B*..., C, ...]`` (as the layers call
    it), then the LIF loop."""
    return lif_multi_step(_batch_norm(x, bn, channel_dim), None, p, "torch")


def _batch_norm(x, bn, channel_dim):
    # As the layers call it: [T, B, ..., C, ...] folded to [T*B*..., C, ...], contiguous (ATen's fast paths)
    y = F.batch_norm(x.flatten(0, channel_dim - 1), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                     bn.eps)
    return y.reshape(x.shape)


@functools.lru_cache(maxsize=None)
def exact_here() -> bool:
    """Whether the fused affine gives ``F.batch_norm``'s bits on this machine (its ATen build and CPU).

    IF neurons that never fire over one step end at ``v = 0 + BN(x)``: the kernel's affine, exactly.
    Both of ATen's layouts are probed (channels with an image behind them, and channels last).
    """
    if not cpu.is_available():
        return False
    with _disable_current_modes():  # the first call may come from inside a tracer or a dispatch mode
        return _probe()


def _probe() -> bool:
    g = torch.Generator().manual_seed(0)
    bn = torch.nn.BatchNorm1d(37).eval()
    with torch.no_grad():
        bn.running_mean.normal_(generator=g)
        bn.running_var.uniform_(0.01, 5.0, generator=g)
        bn.weight.normal_(generator=g)
        bn.bias.normal_(generator=g)
    p = LIFParameters(CHARGE_IF, 1.0, 3e38, None, True, True, ATan())
    for shape, dim in (((1, 5, 37, 7, 3), 2), ((1, 3, 29, 37), 3)):
        x = torch.randn(shape, generator=g) * 3
        with torch.no_grad():
            _, v = bn_lif_inference(x, bn, p, dim)
            want = _batch_norm(x, bn, dim)[0]
        if not torch.equal(v, want):
            return False
    return True
