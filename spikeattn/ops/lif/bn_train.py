"""Training-mode BatchNorm then LIF (from rest) in one pass: ``spikeattn::bn_lif_train``.

Unfused, a layer's ``LIF(BN(y))`` writes BN's output and the LIF reads it back. Here the batch
statistics come from ATen (``torch.batch_norm_update_stats``: the same code, hence the same bits,
as ``native_batch_norm``'s, and the same running-statistics update), the LIF kernel applies
``y * alpha + beta`` as it reads ``y`` (``cuda/lif_host.cpp``: ATen's alpha, beta and fma, as the
inference fusion in ``bn.py``), and the backward is the LIF's then ATen's
``native_batch_norm_backward`` on the same saved tensors: spikes, running statistics and every
gradient are the unfused path's bits. ``exact_here()`` checks that once on this machine.
"""

from __future__ import annotations

import ctypes
import functools
import math

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes

from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, LIFParameters
from spikeattn.ops._native import load_host_library
from spikeattn.ops.lif import cpu
from spikeattn.ops.lif.cpu import _PARAM_TYPES, _ptr
from spikeattn.ops.lif.op import SCALARS, LIFScalars
from spikeattn.ops.lif.reference import naive_lif_multi_step
from spikeattn.surrogate import ATan

__all__ = ["bn_lif_train", "reference_bn_lif_train", "exact_here"]

# y [T, B, ...] with BN's channels at channel_dim; mean and invstd of the batch (native_batch_norm's
# save_mean and save_invstd); returns (spikes like y, h like y: the charged membrane, kept for backward).
torch.library.define(
    "spikeattn::bn_lif_train",
    "(Tensor y, Tensor mean, Tensor invstd, Tensor? weight, Tensor? bias, float eps, int channel_dim, float decay, "
    f"{SCALARS}) -> (Tensor, Tensor)",
)


@torch.library.register_fake("spikeattn::bn_lif_train")
def _fake(y, mean, invstd, weight, bias, eps, channel_dim, decay, *scalars):
    return torch.empty_like(y), torch.empty_like(y)


@functools.lru_cache(maxsize=None)
def _entry():
    fn = load_host_library("lif_host.cpp").sa_lif_bn_train_f32
    _P, _I64 = ctypes.c_void_p, ctypes.c_int64
    fn.argtypes = [_P] * 3 + [_I64, _I64] + [_P] * 4 + [_I64, _I64] + _PARAM_TYPES + [ctypes.c_int]
    fn.restype = None
    return fn


def _check_fp32(**tensors) -> None:
    if any(t is not None and t.dtype != torch.float32 for t in tensors.values()):
        given = ", ".join(f"{n} {t.dtype}" for n, t in tensors.items() if t is not None)
        raise TypeError(f"bn_lif_train runs fp32 input and BatchNorm tensors, got {given}")


def _check_mode(mode: int) -> None:
    if mode not in (CHARGE_LIF, CHARGE_IF):
        raise ValueError(f"bn_lif_train runs LIF and IF neurons (a fixed decay), got charge mode {mode}")


@torch.library.impl("spikeattn::bn_lif_train", "cpu")
def _cpu(y, mean, invstd, weight, bias, eps, channel_dim, decay, *scalars):
    _check_fp32(y=y, mean=mean, invstd=invstd, weight=weight, bias=bias)
    _check_mode(scalars[0])
    # kept in locals: the C code reads their memory
    y, mean, invstd = y.contiguous(), mean.contiguous(), invstd.contiguous()
    weight, bias = (None if t is None else t.contiguous() for t in (weight, bias))
    spikes, h = torch.empty_like(y), torch.empty_like(y)
    inner = math.prod(y.shape[channel_dim + 1:])  # neurons per channel run
    _entry()(_ptr(y), _ptr(spikes), _ptr(h), y.shape[0], y[0].numel(), _ptr(mean), _ptr(invstd),
             None if weight is None else _ptr(weight), None if bias is None else _ptr(bias),
             y.shape[channel_dim], inner, float(decay), *scalars, torch.get_num_threads())
    return spikes, h


def _setup_context(ctx, inputs, output):
    y, mean, invstd, weight, bias, eps, channel_dim, decay, *scalars = inputs
    ctx.eps, ctx.channel_dim, ctx.decay, ctx.scalars = eps, channel_dim, decay, scalars
    ctx.save_for_backward(y, mean, invstd, weight, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_spikes, _grad_h):
    y, mean, invstd, weight, h = ctx.saved_tensors
    if grad_spikes is None:
        return (None,) * (8 + len(ctx.scalars))
    decay = torch.tensor(ctx.decay, dtype=torch.float32)
    empty = h.new_empty(0)  # v0 from rest, grad_v zero and no grad_v0 (spikeattn.ops.lif.op)
    grad_z, _, _ = torch.ops.spikeattn.lif_backward(grad_spikes.contiguous(), empty, h, empty, empty, decay, False,
                                                    *ctx.scalars)
    want_w, want_b = ctx.needs_input_grad[3], ctx.needs_input_grad[4]
    fold = ctx.channel_dim - 1  # BN saw [T*B*..., C, ...], as the layers call it
    grad_y, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
        grad_z.flatten(0, fold), y.flatten(0, fold), weight, None, None, mean, invstd, True, ctx.eps,
        [ctx.needs_input_grad[0], want_w, want_b])
    grad_y = None if grad_y is None else grad_y.view(y.shape)
    return (grad_y, None, None, grad_w if want_w else None, grad_b if want_b else None) + (None,) * (3 + len(ctx.scalars))


torch.library.register_autograd("spikeattn::bn_lif_train", _backward, setup_context=_setup_context)


def bn_lif_train(y: torch.Tensor, bn: torch.nn.modules.batchnorm._BatchNorm, p: LIFParameters,
                 channel_dim: int) -> torch.Tensor:
    """``LIF(BN_train(y))`` from rest: ``y [T, B, ...]`` fp32 on the CPU, BN's channels at ``channel_dim`` (>= 2).

    BN runs as ``bn(y folded to [T*B*..., C, ...])`` in training mode would: batch statistics, running
    statistics and ``num_batches_tracked`` updated alike. Returns the spikes (autograd to ``y`` and BN's
    weight and bias). The LIF must be an LIF or IF neuron (a number for its decay).
    """
    if not (y.dim() > channel_dim >= 2 and y.shape[channel_dim] == bn.num_features):
        raise ValueError(f"y {tuple(y.shape)} must be [T, B, ...] with BN's {bn.num_features} channels at dim {channel_dim}")
    _check_mode(p.mode)
    if not bn.training:
        raise ValueError("bn_lif_train is BatchNorm in training mode (batch statistics); eval mode: bn_lif_inference")
    _check_fp32(y=y, weight=bn.weight, bias=bn.bias, running_mean=bn.running_mean, running_var=bn.running_var)
    y = y.contiguous()  # one copy of a repeated (expanded) conv output, as the unfused path's reshape makes
    folded = y.flatten(0, channel_dim - 1)  # (T*B*..., C, ...): what BN sees in the layers
    F._verify_batch_size(folded.size())     # F.batch_norm's error for one value per channel
    factor = _momentum(bn)
    with torch.no_grad():
        mean, var = torch.batch_norm_update_stats(folded.detach().contiguous(), bn.running_mean, bn.running_var,
                                                  factor)
        # ATen's InvStd<double> on the float var: 1 / sqrt(var + eps) in double, rounded to float (0 for var = eps = 0)
        invstd = torch.where((var != 0) | (bn.eps != 0), 1.0 / torch.sqrt(var.double() + bn.eps), 0.0).float()
    spikes, _ = torch.ops.spikeattn.bn_lif_train(y, mean, invstd, bn.weight, bn.bias, float(bn.eps), channel_dim,
                                                 float(p.decay), *LIFScalars.of(p))
    return spikes


def _momentum(bn) -> float:
    """The running-statistics factor of this step, counting it as ``_BatchNorm.forward`` does."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return factor


def reference_bn_lif_train(y, bn, p: LIFParameters, channel_dim: int):
    """The oracle: ``bn`` (training mode) on ``y`` folded as the layers fold it, then the LIF loop from rest."""
    z = bn(y.flatten(0, channel_dim - 1)).reshape(y.shape)
    v0 = torch.full(y.shape[1:], 0.0 if p.v_reset is None else float(p.v_reset))
    return naive_lif_multi_step(z, v0, p)[0]


@functools.lru_cache(maxsize=None)
def exact_here() -> bool:
    """Whether the fused BN affine gives ``F.batch_norm``'s training-mode bits on this machine (its ATen build
    and CPU). IF neurons that never fire over one step hold ``h = 0 + BN(y)``: the kernel's affine exactly.
    Both of ATen's layouts are probed (channels with an image behind them, and channels last)."""
    if not cpu.is_available():
        return False
    with _disable_current_modes():  # the first call may come from inside a tracer or a dispatch mode
        return _probe()


def _probe() -> bool:
    g = torch.Generator().manual_seed(0)
    bn = torch.nn.BatchNorm1d(37)
    with torch.no_grad():
        bn.weight.normal_(generator=g)
        bn.bias.normal_(generator=g)
    p = LIFParameters(CHARGE_IF, 1.0, 3e38, None, True, True, ATan())
    for shape, dim in (((1, 5, 37, 7, 3), 2), ((1, 3, 29, 37), 3)):
        y = torch.randn(shape, generator=g) * 3 + 0.7
        with torch.no_grad():
            mean, var = torch.batch_norm_update_stats(y.flatten(0, dim - 1), None, None, 0.0)
            invstd = (1.0 / torch.sqrt(var.double() + bn.eps)).float()
            _, h = torch.ops.spikeattn.bn_lif_train(y, mean, invstd, bn.weight, bn.bias, bn.eps, dim, 1.0,
                                                    *LIFScalars.of(p))
            want = F.batch_norm(y.flatten(0, dim - 1), None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
        if not torch.equal(h, want.reshape(y.shape)):
            return False
    return True
