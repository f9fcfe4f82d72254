"""Pure neuron maths, one time step, in plain torch (no modules, no kernels).

The multi-step reference (``spikeattn.ops.lif.reference``) and the neuron modules are built from
these parts; ``cuda/lif_core.cuh`` writes the same steps for the kernels, operation for operation,
so fp32 spikes agree bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeattn.surrogate import Surrogate

__all__ = ["LIFParameters", "LIFState", "charge", "fire", "reset", "lif_step"]

CHARGE_IF, CHARGE_LIF, CHARGE_PLIF = 0, 1, 2  # enum ChargeMode in cuda/lif_core.cuh


class LIFParameters(NamedTuple):
    """Neuron constants. ``v_reset=None`` means a soft reset (subtract ``v_th``; leak towards 0).

    ``mode`` picks the charge: IF (no leak), LIF (divide by ``decay=tau``) or PLIF (multiply by
    ``k = sigmoid(w) = 1/tau``, a tensor that may require grad).
    """

    mode: int = CHARGE_LIF
    decay: float | torch.Tensor = 2.0  # tau for LIF; k = 1/tau (a tensor) for PLIF; unused for IF
    v_th: float = 1.0
    v_reset: float | None = 0.0
    decay_input: bool = True
    detach_reset: bool = False
    surrogate: Surrogate | None = None


class LIFState(NamedTuple):
    v: torch.Tensor  # membrane after the last reset


def charge(x: torch.Tensor, v: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    r"""Membrane before firing, :math:`H[t]`.

    .. math::
        H = V + (X - (V - V_r)) / \tau \;\text{(decay\_input)}, \quad H = V - (V - V_r)/\tau + X
    """
    vr = 0.0 if p.v_reset is None else p.v_reset
    if p.mode == CHARGE_IF:
        return v + x
    if p.mode == CHARGE_LIF:
        return v + (x - (v - vr)) / p.decay if p.decay_input else v - (v - vr) / p.decay + x
    return v + (x - (v - vr)) * p.decay if p.decay_input else v - (v - vr) * p.decay + x


def fire(h: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    """Spikes ``H - v_th >= 0`` with the surrogate's gradient."""
    return p.surrogate(h - p.v_th)


def reset(h: torch.Tensor, spike: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    """Hard reset to ``v_reset`` or soft reset by ``v_th``; ``detach_reset`` cuts the spike's gradient here."""
    if p.detach_reset:
        spike = spike.detach()
    if p.v_reset is None:
        return h - spike * p.v_th
    return spike * p.v_reset + (1.0 - spike) * h


def lif_step(x: torch.Tensor, state: LIFState, p: LIFParameters) -> tuple[torch.Tensor, LIFState]:
    """One step: charge, fire, reset. Returns ``(spike, new_state)``; computes in ``state.v.dtype``."""
    h = charge(x.to(state.v.dtype), state.v, p)
    spike = fire(h, p)
    return spike, LIFState(reset(h, spike, p))
