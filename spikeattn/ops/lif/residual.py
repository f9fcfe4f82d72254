"""LIF then a residual add in one pass: ``residual + LIF(x)`` from rest (``spikeattn::lif_residual``).

A block that adds spikes to a real-valued stream (SpikeGPT's ``x + LIF(y)``) otherwise writes the spikes
and reads them back for the add; the fused kernel (``cuda/lif_host.cpp``, RESIDUAL) writes the sum as it
fires, with torch's rounding of the add (one fp add of 0 or 1), so the result is the bits of the two ops.
The backward is the LIF's (``spikeattn::lif_backward`` on the saved membrane h); the residual's
gradient is the output's. CPU kernels for fp32 and fp64 LIF/IF; everything else (PLIF, other dtypes,
CUDA tensors, ``backend='torch'``) runs the two ops.
"""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.functional.neuron import CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif import check_input, check_params, lif_multi_step, resolve_backend
from spikeattn.ops.lif.cpu import _PARAM_TYPES, _ptr
from spikeattn.ops.lif.op import SCALARS, LIFScalars, layout, state_shape
from spikeattn.ops._native import load_host_library

__all__ = ["lif_residual", "naive_lif_residual"]

torch.library.define(
    "spikeattn::lif_residual",
    f"(Tensor x, Tensor residual, float decay, bool batch_first, {SCALARS}) -> (Tensor, Tensor, Tensor)",
)
# Inference: the same without h (nothing to keep for a backward); no autograd formula.
torch.library.define(
    "spikeattn::lif_residual_inference",
    f"(Tensor x, Tensor residual, float decay, bool batch_first, {SCALARS}) -> (Tensor, Tensor)",
)

_DTYPES = {torch.float32: "f32", torch.float64: "f64"}


@torch.library.register_fake("spikeattn::lif_residual")
def _fake(x, residual, decay, batch_first, *scalars):
    return torch.empty_like(x), x.new_empty(state_shape(x.shape, batch_first)), torch.empty_like(x)


@torch.library.register_fake("spikeattn::lif_residual_inference")
def _fake_inference(x, residual, decay, batch_first, *scalars):
    return torch.empty_like(x), x.new_empty(state_shape(x.shape, batch_first))


@functools.lru_cache(maxsize=None)
def _entry(dtype: torch.dtype):
    fn = getattr(load_host_library("lif_host.cpp"), f"sa_lif_residual_forward_{_DTYPES[dtype]}")
    fn.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 3 + _PARAM_TYPES + [ctypes.c_int]
    fn.restype = None
    return fn


def _forward(x, residual, decay, batch_first, scalars, keep_h: bool):
    if x.dtype not in _DTYPES or residual.dtype != x.dtype or residual.shape != x.shape:
        raise TypeError(f"spikeattn::lif_residual runs fp32 or fp64 x and a residual of x's dtype and shape, got x "
                        f"{x.dtype} {tuple(x.shape)}, residual {residual.dtype} {tuple(residual.shape)}")
    x, residual = x.contiguous(), residual.contiguous()  # kept in locals: the C code reads their memory
    out, v_last = torch.empty_like(x), x.new_empty(state_shape(x.shape, batch_first))
    h = torch.empty_like(x) if keep_h else None
    T, N, M = layout(x.shape, batch_first)
    _entry(x.dtype)(_ptr(x), _ptr(residual), None, _ptr(out), None if h is None else _ptr(h), _ptr(v_last),
                    T, N, M, float(decay), *scalars, torch.get_num_threads())
    return out, v_last, h


@torch.library.impl("spikeattn::lif_residual", "cpu")
def _cpu(x, residual, decay, batch_first, *scalars):
    return _forward(x, residual, decay, batch_first, scalars, keep_h=True)


@torch.library.impl("spikeattn::lif_residual_inference", "cpu")
def _cpu_inference(x, residual, decay, batch_first, *scalars):
    return _forward(x, residual, decay, batch_first, scalars, keep_h=False)[:2]


def _setup_context(ctx, inputs, output):
    x, _, decay, batch_first, *scalars = inputs
    ctx.batch_first, ctx.scalars, ctx.decay = batch_first, scalars, decay
    ctx.save_for_backward(output[2])
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, grad_v, _grad_h):
    (h,) = ctx.saved_tensors
    if grad_out is None and grad_v is None:
        return (None,) * (4 + len(ctx.scalars))
    v_shape = state_shape(h.shape, ctx.batch_first)
    grad_x, _, _ = torch.ops.spikeattn.lif_backward(
        torch.zeros_like(h) if grad_out is None else grad_out.contiguous(),
        h.new_zeros(v_shape) if grad_v is None else grad_v.contiguous(),
        h, h.new_empty(0), h.new_empty(0), torch.tensor(ctx.decay, dtype=h.dtype), ctx.batch_first, *ctx.scalars,
    )
    return (grad_x, grad_out) + (None,) * (2 + len(ctx.scalars))


torch.library.register_autograd("spikeattn::lif_residual", _backward, setup_context=_setup_context)


def naive_lif_residual(x: torch.Tensor, residual: torch.Tensor, p: LIFParameters, batch_first: bool = False):
    """The oracle: the LIF loop from rest, then ``residual + spikes``; returns ``(sum, v_last)``."""
    spikes, v = lif_multi_step(x, None, p, "torch", batch_first)
    return residual + spikes, v


def lif_residual(x: torch.Tensor, residual: torch.Tensor, p: LIFParameters, backend: str = "auto",
                 batch_first: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(residual + LIF(x) from rest, v_last)``: ``x`` and ``residual`` of one shape, layout as ``lif_multi_step``.

    The fused kernel where the LIF's backend is ``cpu`` and the neuron's decay is a number (LIF, IF) on fp32 or
    fp64 input and a residual of x's dtype; otherwise ``lif_multi_step`` on that backend, then the add. Same values either way.
    """
    if not isinstance(residual, torch.Tensor) or residual.shape != x.shape:
        raise ValueError(f"residual must be a tensor of x's shape {tuple(x.shape)}, got "
                         f"{getattr(residual, 'dtype', type(residual).__name__)} {tuple(getattr(residual, 'shape', ()))}")
    # A residual of another dtype (an fp32 stream under bf16 autocast) keeps torch's type promotion: two ops.
    fused = (p.mode != CHARGE_PLIF and x.dtype in _DTYPES and residual.dtype == x.dtype and residual.device == x.device
             and resolve_backend(backend, x, p.surrogate) == "cpu")
    if not fused:
        spikes, v = lif_multi_step(x, None, p, backend, batch_first)
        return residual + spikes, v
    check_input(x, "x", batch_first)
    check_params(p)
    args = (float(p.decay), batch_first, *LIFScalars.of(p))
    if torch.is_grad_enabled() and (x.requires_grad or residual.requires_grad):
        out, v, _ = torch.ops.spikeattn.lif_residual(x, residual, *args)
        return out, v
    return torch.ops.spikeattn.lif_residual_inference(x, residual, *args)
