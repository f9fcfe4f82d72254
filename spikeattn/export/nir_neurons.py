"""Neuron modules built by ``from_nir``: NIR's LIF / IF / CubaLIF as time-major ``[T, B, ...]`` modules.

Two forms, one per kind of file:

* ``SpikeattnNeuron``: a node written by ``to_nir`` (its metadata names our neuron, reset and
  ``tau_steps``) runs through the same op as ``spikeattn.neuron.LIF/IF/PLIF`` (``ops.lif``), so its
  spikes equal the exported network's bit for bit, soft reset included.
* ``NIRNeuron``: any other LIF/IF (or CubaLIF whose current decays fully each step), NIR's equations
  under forward Euler with per-neuron parameters:

  .. math::
      v \\leftarrow a v + g I + b,\\quad a = 1 - dt/\\tau,\\; g = dt\\,r/\\tau,\\; b = (dt/\\tau) v_{leak}
      \\;(\\text{IF: } a = 1,\\, g = dt\\, r,\\, b = 0)

  then a spike where ``v > v_threshold`` and ``v = v_reset`` (NIR has hard resets only). The
  membrane starts at ``v_leak`` (IF: 0), as in norse and snntorch. ``a v + I`` is snntorch's own
  ``beta * mem + input`` arithmetic, so snntorch's files give snntorch's spikes.

Thresholds: NIR fires on ``v > theta``, we on ``v >= v_th``. In float32 these are the same test when
``v_th = nextafter(theta, +inf)``, which both forms use (state is float32).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spikeattn import surrogate as sg
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters, fire, reset
from spikeattn.ops.lif import lif_multi_step, state_dtype

__all__ = ["SpikeattnNeuron", "NIRNeuron", "ge_threshold"]

_MODES = {"LIF": CHARGE_LIF, "IF": CHARGE_IF, "PLIF": CHARGE_PLIF}


def ge_threshold(theta) -> np.ndarray:
    """float32 ``v_th`` with ``v >= v_th`` exactly when ``v > theta`` (float32 ``v``)."""
    t = np.asarray(theta, np.float32)
    return np.nextafter(t, np.float32(np.inf))


class SpikeattnNeuron(nn.Module):
    """A neuron node that ``to_nir`` wrote, rebuilt from its metadata; runs ``ops.lif`` like our modules.

    Stateless across calls: every forward starts at ``v_init`` (the exported neuron after ``reset``).
    """

    def __init__(self, neuron: str, tau_steps: float | None, v_th: float, v_reset: float | None,
                 decay_input: bool, surrogate: sg.Surrogate):
        super().__init__()
        if neuron not in _MODES:
            raise ValueError(f"metadata neuron must be one of {sorted(_MODES)}, got {neuron!r}")
        self.neuron, self.tau_steps, self.v_th, self.v_reset = neuron, tau_steps, v_th, v_reset
        self.decay_input, self.surrogate = decay_input, surrogate

    def _decay(self, dtype: torch.dtype):
        if self.neuron == "IF":
            return 1.0
        if self.neuron == "LIF":
            return self.tau_steps
        # PLIF's op takes k = 1/tau as a tensor; the exporter wrote tau_steps = 1 / float32(k).
        return torch.tensor(1.0 / self.tau_steps, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = LIFParameters(_MODES[self.neuron], self._decay(state_dtype(x.dtype)), self.v_th, self.v_reset,
                          self.decay_input, False, self.surrogate)
        return lif_multi_step(x, None, p)[0]

    def extra_repr(self) -> str:
        reset_kind = "subtract" if self.v_reset is None else f"to {self.v_reset}"
        return f"{self.neuron}, tau_steps={self.tau_steps}, v_th={self.v_th}, reset {reset_kind}"


class NIRNeuron(nn.Module):
    """NIR's LIF/IF (forward Euler, hard reset) with per-neuron parameters; see the module docstring.

    Args: per-neuron arrays (broadcast to the neuron shape) ``decay`` a, ``gain`` g, ``bias`` b,
    ``theta`` (NIR's ``v_threshold``), ``v_reset`` and ``v_init``.
    """

    def __init__(self, decay, gain, bias, theta, v_reset, v_init, surrogate: sg.Surrogate):
        super().__init__()
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))   # noqa: E731
        for name, value in (("decay", decay), ("gain", gain), ("bias", bias), ("v_th", ge_threshold(theta)),
                            ("v_reset", v_reset), ("v_init", v_init)):
            self.register_buffer(name, f32(value))
        self.surrogate = surrogate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sd = state_dtype(x.dtype)
        p = LIFParameters(CHARGE_LIF, 1.0, self.v_th.to(sd), self.v_reset.to(sd), True, False, self.surrogate)
        a, g, b = self.decay.to(sd), self.gain.to(sd), self.bias.to(sd)
        v = self.v_init.to(sd).expand(x.shape[1:])
        out = []
        for xt in x:                                  # xt: (B, ...)
            h = a * v + g * xt.to(sd) + b            # snntorch: beta * mem + input (g = 1, b = 0)
            s = fire(h, p)
            v = reset(h, s, p)
            out.append(s.to(x.dtype))
        return torch.stack(out)                       # (T, B, ...)
