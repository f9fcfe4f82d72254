"""Multi-step LIF / IF / PLIF: the public op and its one backend table.

Backends: ``torch`` (the reference loop, the oracle), ``cpu`` (fused C++), ``cupy`` (CUDA kernels).
``auto`` picks the fastest one that can run on the input's device.
"""

from __future__ import annotations

import math
import numbers

import torch

from spikeattn.functional.neuron import CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif import cpu, cupy
from spikeattn.ops._dtypes import state_dtype
from spikeattn.ops.lif.op import LIFScalars, state_shape
from spikeattn.ops.lif.reference import naive_lif_multi_step
from spikeattn.ops._backends import resolve
from spikeattn.ops._checks import check_finite
from spikeattn.surrogate import SURROGATE_IDS, Surrogate

__all__ = ["lif_multi_step", "BACKENDS", "resolve_backend", "state_dtype", "check_thresholds"]


def fused_lif_multi_step(x_seq: torch.Tensor, v0: torch.Tensor, p: LIFParameters, batch_first: bool = False):
    """The registered op (its CPU or CUDA kernel by device); same contract as the reference.

    Where autograd records nothing (inference), ``lif_inference``: the same kernel without storing h.
    """
    decay = p.decay if p.mode == CHARGE_PLIF else torch.tensor(float(p.decay), dtype=v0.dtype)
    scalars = LIFScalars.of(p)
    if torch.is_grad_enabled() and (x_seq.requires_grad or v0.requires_grad or decay.requires_grad):
        spikes, v_last, _ = torch.ops.spikeattn.lif_forward(x_seq, v0, decay, batch_first, *scalars)
        return spikes, v_last
    return torch.ops.spikeattn.lif_inference(x_seq, v0, decay, batch_first, *scalars)


BACKENDS = {"torch": naive_lif_multi_step, "cpu": fused_lif_multi_step, "cupy": fused_lif_multi_step}


def resolve_backend(backend: str, x: torch.Tensor, surrogate: Surrogate) -> str:
    """Turn ``backend`` into a runnable backend name for input ``x``; kernels know only built-in surrogates."""
    builtin = type(surrogate).__name__ in SURROGATE_IDS and type(surrogate).__module__ == "spikeattn.surrogate"
    if backend in ("cpu", "cupy") and not builtin:
        raise ValueError(f"backend={backend!r} supports the built-in surrogates {sorted(SURROGATE_IDS)}, got {surrogate!r}")
    return resolve(backend, x, "x_seq", {"cupy": cupy, "cpu": cpu}, fast_ok=builtin)


def lif_multi_step(
    x_seq: torch.Tensor, v0: torch.Tensor | None, p: LIFParameters, backend: str = "auto", batch_first: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Multi-step LIF/IF/PLIF over a time-major (or batch-first) sequence.

    .. math::
        H_t = \mathrm{charge}(V_{t-1}, X_t),\quad S_t = \Theta(H_t - V_{th}),\quad V_t = \mathrm{reset}(H_t, S_t)

    Args:
        x_seq: input current ``[T, B, ...]``, floating point.
        v0: membrane ``[B, ...]`` in the state dtype (fp32, or fp64 for fp64 input); None starts
            at ``v_reset`` (0 for a soft reset).
        p: neuron constants (``LIFParameters``).
        backend: ``auto``, ``torch``, ``cpu`` or ``cupy``.
        batch_first: ``x_seq`` is ``[B, T, ...]`` (token-major, as a language model's ``[B, T, C]``):
            the kernels step through it in place, without a transposed copy.

    Returns:
        ``(spikes [T, B, ...] in x_seq.dtype, v [B, ...] in the state dtype)``; spikes ``[B, T, ...]``
        if ``batch_first``.
    """
    check_input(x_seq, "x_seq", batch_first)
    sd = state_dtype(x_seq.dtype)
    v_shape = state_shape(x_seq.shape, batch_first)
    check_params(p)
    backend = resolve_backend(backend, x_seq, p.surrogate)
    if v0 is None and backend != "torch":  # from rest: the fused ops take an empty v0 (no [B, ...] fill)
        v0 = x_seq.new_empty(0, dtype=sd)
    elif v0 is None:
        v0 = torch.full(v_shape, 0.0 if p.v_reset is None else float(p.v_reset), dtype=sd, device=x_seq.device)
    elif v0.shape != v_shape:
        raise ValueError(
            f"membrane state has shape {tuple(v0.shape)} but the input needs {v_shape}; "
            "call reset() on the neuron (or spikeattn.reset(model)) before feeding a new shape"
        )
    elif v0.dtype != sd or v0.device != x_seq.device:
        raise ValueError(f"v0 must be {sd} on {x_seq.device} for {x_seq.dtype} input, got {v0.dtype} on {v0.device}")
    return BACKENDS[backend](x_seq, v0, p, batch_first)


def check_input(x_seq: torch.Tensor, name: str, batch_first: bool = False) -> None:
    """Time-major (or batch-first) floating-point input with at least [T, B]; NaN checked in debug mode."""
    if not isinstance(x_seq, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x_seq).__name__}")
    if not x_seq.is_floating_point():
        raise TypeError(f"{name} must be floating point (fp16, bf16, fp32, fp64), got {x_seq.dtype}")
    if x_seq.dim() < 2:
        raise ValueError(
            f"{name} must be time-major [T, B, ...] with at least 2 dims, got shape {tuple(x_seq.shape)}; "
            "for one step use step_mode='s' or add a time dimension with x.unsqueeze(0)"
        )
    if x_seq.shape[1 if batch_first else 0] == 0:
        raise ValueError(f"{name} has an empty time dimension (T=0), shape {tuple(x_seq.shape)}")
    check_finite(x_seq, name)


def check_params(p: LIFParameters) -> None:
    if not isinstance(p.surrogate, Surrogate):
        raise TypeError(f"surrogate must be a spikeattn.surrogate.Surrogate, got {type(p.surrogate).__name__}")
    if p.mode == CHARGE_LIF and not (math.isfinite(p.decay) and p.decay > 1.0):
        raise ValueError(f"tau must be a finite number > 1 (the leak divides by tau), got {p.decay!r}")
    check_thresholds(p.v_th, p.v_reset)


def check_thresholds(v_th, v_reset) -> None:
    """Finite numbers, and ``v_th > v_reset`` for a hard reset (else the neuron fires at every step)."""
    for name, value in (("v_th", v_th), ("v_reset", v_reset)):
        if value is None and name == "v_reset":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if v_reset is not None and not v_th > v_reset:
        raise ValueError(f"v_th must be greater than v_reset for a hard reset (else the neuron fires at every step), "
                         f"got v_th={v_th!r}, v_reset={v_reset!r}")
