"""SpikeGPT's pointwise steps with one-pass backward kernels: ``relu(x)^2`` and ``sigmoid(r) * v``.

Autograd runs ``square(relu(x))`` as two passes forward and three backward over the ``[B, T, 4C]``
hidden activations, and ``sigmoid(r) * v`` as three passes backward. ``cuda/pointwise_host.cpp`` does
each backward (and relu^2's forward) in one pass, with the roundings of the torch ops it replaces: the
values and gradients are autograd's, bit for bit. Small tensors, other devices and dtypes, or no
compiler, run the torch ops (``naive_relu_square`` / ``naive_sigmoid_gate``, the references).
"""

from __future__ import annotations

import ctypes
import functools

import torch

from spikeattn.ops._native import host_availability, load_host_library

__all__ = ["relu_square", "sigmoid_gate", "naive_relu_square", "naive_sigmoid_gate"]

_TAGS = {torch.float32: "f32", torch.float64: "f64"}
_P, _I64, _I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int

is_available = host_availability("pointwise_host.cpp")  # builds once; False when it cannot be built here


def naive_relu_square(x: torch.Tensor) -> torch.Tensor:
    return torch.square(torch.relu(x))


def naive_sigmoid_gate(r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(r) * v


@functools.lru_cache(maxsize=None)
def _entry(name: str, dtype: torch.dtype, pointers: int):
    fn = getattr(load_host_library("pointwise_host.cpp"), f"sa_{name}_{_TAGS[dtype]}")
    fn.argtypes = [_P] * pointers + [_I64, _I]
    fn.restype = None
    return fn


def _run(name: str, inputs, outputs) -> None:
    args = [t.data_ptr() for t in (*inputs, *outputs)]
    _entry(name, outputs[0].dtype, len(args))(*args, outputs[0].numel(), torch.get_num_threads())


# Below this many elements (e.g. one token in generation) a kernel call costs more than it saves.
MIN_FUSED_NUMEL = 1 << 14


def _fused(*xs: torch.Tensor) -> bool:
    x = xs[0]
    return (x.numel() >= MIN_FUSED_NUMEL and x.device.type == "cpu" and x.dtype in _TAGS and all(t.dtype == x.dtype and t.shape == x.shape
            and t.device == x.device and t.is_contiguous() for t in xs) and is_available())


class _ReluSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        y = torch.empty_like(x)
        _run("relu_square_forward", (x,), (y,))
        return y

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        gx = torch.empty_like(x)
        _run("relu_square_backward", (x, g.contiguous()), (gx,))
        return gx


class _SigmoidGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, v):
        s = torch.sigmoid(r)  # torch's own sigmoid: the forward bits of the reference
        ctx.save_for_backward(s, v)
        return s * v

    @staticmethod
    def backward(ctx, g):
        s, v = ctx.saved_tensors
        gr, gv = torch.empty_like(s), torch.empty_like(v)
        _run("sigmoid_gate_backward", (s, v, g.contiguous()), (gr, gv))
        return gr, gv


def relu_square(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)^2``, any shape: the values and gradients of ``naive_relu_square``, bit for bit."""
    return _ReluSquare.apply(x) if _fused(x) else naive_relu_square(x)


def sigmoid_gate(r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``sigmoid(r) * v`` (same shapes): the values and gradients of ``naive_sigmoid_gate``, bit for bit."""
    return _SigmoidGate.apply(r, v) if _fused(r, v) else naive_sigmoid_gate(r, v)
