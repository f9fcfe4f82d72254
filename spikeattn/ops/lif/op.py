"""The registered multi-step LIF op (``spikeattn::lif_forward`` / ``lif_backward``, and ``lif_inference``).

One schema, autograd rule and fake kernel for every fused path; each device registers its own
kernel (``cpu.py`` for the CPU, ``cupy.py`` for CUDA). The forward returns the charged membrane
``h`` [T, ...] (state dtype) next to the spikes: it is all the backward needs (spikes are
``h >= v_th``), so nothing else per time step is saved.
"""

from __future__ import annotations

import math
from typing import NamedTuple, get_type_hints

import torch

from spikeattn.functional.neuron import CHARGE_PLIF, LIFParameters
from spikeattn.ops._dtypes import state_dtype

# Empty tensors in the ops' contract (``numel() == 0`` where a neuron has state): a v0 starts every
# neuron at rest (v_reset, 0 for a soft reset) and a grad_v is zero with no grad_v0 wanted (it comes
# back empty). Layers start every call from rest: this spares the [B, ...] fills and stores.


class LIFScalars(NamedTuple):
    """The ops' scalar arguments: the one table of their names, order and types.

    The schema below, the ctypes signature (``cpu.py``) and the CUDA kernel arguments (``cupy.py``)
    are generated from it; the C side takes them in this order after the decay
    (``SA_PARAMS_DECL`` in cuda/lif_host.cpp, ``SA_LIF_SCALARS`` in cuda/lif.cu).
    """

    mode: int           # CHARGE_IF / CHARGE_LIF / CHARGE_PLIF
    decay_input: bool
    v_th: float
    v_reset: float      # 0 for a soft reset
    soft_reset: bool
    detach_reset: bool
    surrogate: int      # spikeattn.surrogate id
    alpha: float        # the surrogate's parameter

    @classmethod
    def of(cls, p: LIFParameters) -> "LIFScalars":
        soft = p.v_reset is None
        return cls(p.mode, p.decay_input, float(p.v_th), 0.0 if soft else float(p.v_reset), soft, p.detach_reset,
                   p.surrogate.id, p.surrogate.param)


# Field type names ("int", "bool", "float"): schema types as they are.
SCALAR_TYPES = tuple(t.__name__ for t in get_type_hints(LIFScalars).values())
SCALARS = ", ".join(f"{t} {name}" for t, name in zip(SCALAR_TYPES, LIFScalars._fields))


def state_shape(x_shape, batch_first: bool) -> tuple[int, ...]:
    """Membrane shape for input ``[T, B, ...]`` (``[B, ...]``) or, ``batch_first``, ``[B, T, ...]`` (the same)."""
    return (*x_shape[:1], *x_shape[2:]) if batch_first else tuple(x_shape[1:])


def is_rest(v0: torch.Tensor, x_shape, batch_first: bool) -> bool:
    """Whether ``v0`` is the empty tensor that means "from rest" for input ``x_shape``."""
    return v0.numel() == 0 and math.prod(state_shape(x_shape, batch_first)) != 0


def materialize(v0: torch.Tensor, x_shape, batch_first: bool, v_reset: float) -> torch.Tensor:
    """``v0`` as a full membrane tensor (an empty "from rest" one filled with ``v_reset``)."""
    if not is_rest(v0, x_shape, batch_first):
        return v0
    return torch.full(state_shape(x_shape, batch_first), v_reset, dtype=v0.dtype, device=v0.device)


def layout(x_shape, batch_first: bool) -> tuple[int, int, int]:
    """``(T, N, M)`` for the kernels: T steps of N neurons, laid out as N / M sequences of ``[T, M]``.

    Time-major ``[T, ...]`` is one sequence (M = N); batch-first ``[B, T, ...]`` is B of them.
    """
    t = x_shape[1] if batch_first else x_shape[0]
    n = math.prod(state_shape(x_shape, batch_first))
    return t, n, math.prod(x_shape[2:]) if batch_first else n


# batch_first: x (and spikes, h) are [B, T, ...] instead of [T, B, ...]; v is [B, ...] either way.
torch.library.define(
    "spikeattn::lif_forward",
    f"(Tensor x, Tensor v0, Tensor decay, bool batch_first, {SCALARS}) -> (Tensor, Tensor, Tensor)",
)
# Inference: the forward without h (nothing to keep for a backward); no autograd formula.
torch.library.define(
    "spikeattn::lif_inference",
    f"(Tensor x, Tensor v0, Tensor decay, bool batch_first, {SCALARS}) -> (Tensor, Tensor)",
)
torch.library.define(
    "spikeattn::lif_backward",
    f"(Tensor grad_spikes, Tensor grad_v, Tensor h_seq, Tensor x, Tensor v0, Tensor decay, bool batch_first, "
    f"{SCALARS}) -> (Tensor, Tensor, Tensor)",
)


@torch.library.register_fake("spikeattn::lif_forward")
def _forward_fake(x, v0, decay, batch_first, *scalars):
    sd = state_dtype(x.dtype)
    v_last = v0.new_empty(state_shape(x.shape, batch_first), dtype=sd)
    return torch.empty_like(x), v_last, x.new_empty(x.shape, dtype=sd)


@torch.library.register_fake("spikeattn::lif_inference")
def _inference_fake(x, v0, decay, batch_first, *scalars):
    return torch.empty_like(x), v0.new_empty(state_shape(x.shape, batch_first), dtype=state_dtype(x.dtype))


@torch.library.register_fake("spikeattn::lif_backward")
def _backward_fake(grad_spikes, grad_v, h_seq, x, v0, decay, batch_first, *scalars):
    return torch.empty_like(grad_spikes), torch.empty_like(grad_v), torch.empty_like(decay)


def _setup_context(ctx, inputs, output):
    x, v0, decay, batch_first, *scalars = inputs
    ctx.batch_first, ctx.scalars = batch_first, scalars
    ctx.x_dtype, ctx.v_shape = x.dtype, state_shape(x.shape, batch_first)
    # Only PLIF's decay gradient needs x and v0; LIF/IF keep h alone (4 bytes per neuron-step).
    keep = (x, v0) if scalars[0] == CHARGE_PLIF else (x.new_empty(0), v0.new_empty(0))
    ctx.save_for_backward(output[2], decay, *keep)
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_spikes, grad_v, _grad_h):
    h_seq, decay, x, v0 = ctx.saved_tensors
    if grad_spikes is None:
        grad_spikes = torch.zeros_like(h_seq, dtype=ctx.x_dtype)
    want_v0 = ctx.needs_input_grad[1]
    if grad_v is None:  # zero: empty where no grad_v0 is wanted either (the kernels skip both)
        grad_v = h_seq.new_zeros(ctx.v_shape) if want_v0 else h_seq.new_empty(0)
    grad_x, grad_v0, grad_decay = torch.ops.spikeattn.lif_backward(
        grad_spikes.contiguous(), grad_v.contiguous(), h_seq, x, v0, decay, ctx.batch_first, *ctx.scalars
    )
    plif = ctx.scalars[0] == CHARGE_PLIF
    return (grad_x, grad_v0 if want_v0 else None, grad_decay if plif else None, None) + (None,) * len(ctx.scalars)


torch.library.register_autograd("spikeattn::lif_forward", _backward, setup_context=_setup_context)
