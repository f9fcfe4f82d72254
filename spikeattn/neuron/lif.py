"""LIF, IF and PLIF neurons: thin modules over ``spikeattn.ops.lif``.

Each module holds its constants; the maths lives in ``spikeattn.functional.neuron`` and the kernels
in ``spikeattn.ops.lif``. ``multi_step(x_seq, v) -> (spikes, v)`` is the explicit-state form. A module
built with ``stateful=True`` (the default, for users who step by hand) also keeps the membrane ``v``
between calls until ``reset()``; with ``stateful=False`` (what the library's layers build) every call
starts from rest and keeps nothing, so one model can serve several threads at once.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spikeattn import surrogate as sg
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.neuron.base import MemoryModule
from spikeattn.ops.lif import check_thresholds, lif_multi_step, state_dtype

__all__ = ["LIF", "IF", "PLIF", "lif_multistep"]


def lif_multistep(
    x_seq: torch.Tensor,
    v0: torch.Tensor | None = None,
    tau: float = 2.0,
    v_th: float = 1.0,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = False,
    surrogate: sg.Surrogate = sg.ATan(2.0),
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Functional multi-step LIF: ``x_seq [T, B, ...] -> (spikes [T, B, ...], v [B, ...])``.

    .. math::
        H_t = V_{t-1} + (X_t - (V_{t-1} - V_{reset})) / \tau,\quad S_t = \Theta(H_t - V_{th})

    Example:
        >>> s, v = lif_multistep(torch.rand(4, 2, 8), tau=2.0)
    """
    p = LIFParameters(CHARGE_LIF, tau, v_th, v_reset, decay_input, detach_reset, surrogate)
    return lif_multi_step(x_seq, v0, p, backend)


class _Neuron(MemoryModule):
    """Shared by LIF/IF/PLIF: step modes, the explicit-state call into the op and the optional membrane.

    Keyword options of every neuron:
        v_th: firing threshold. v_reset: hard reset value, None for a soft reset (subtract v_th).
        decay_input: leak the input too (spikingjelly's decay_input). detach_reset: no gradient through the reset.
        surrogate: the spike's gradient (``spikeattn.surrogate``). backend: ``spikeattn.ops.lif`` backend.
        step_mode: 'm' for input ``[T, B, ...]``, 's' for one step ``[B, ...]``.
        batch_first: the time axis is second, ``[B, T, ...]`` (token-major, as a language model's ``[B, T, C]``);
            the kernels step through it in place. In step mode 's' the input is ``[B, ...]`` either way.
        stateful: keep the membrane between calls (``reset()`` clears it); False starts every call from rest.
    """

    mode = CHARGE_LIF

    def __init__(self, *, v_th: float = 1.0, v_reset: float | None = 0.0, decay_input: bool = True,
                 detach_reset: bool = False, surrogate: sg.Surrogate = sg.ATan(2.0), backend: str = "auto",
                 step_mode: str = "m", batch_first: bool = False, stateful: bool = True):
        super().__init__()
        if step_mode not in ("m", "s"):
            raise ValueError(f"step_mode must be 'm' (input [T, B, ...]) or 's' (input [B, ...]), got {step_mode!r}")
        check_thresholds(v_th, v_reset)
        for name, flag in (("batch_first", batch_first), ("stateful", stateful)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.v_th, self.v_reset = v_th, v_reset
        self.decay_input, self.detach_reset = decay_input, detach_reset
        self.surrogate, self.backend, self.step_mode = surrogate, backend, step_mode
        self.batch_first, self.stateful = batch_first, stateful
        self.v: torch.Tensor | None = None

    def decay(self, dtype: torch.dtype):
        raise NotImplementedError

    def parameters_for(self, dtype: torch.dtype) -> LIFParameters:
        return LIFParameters(
            self.mode, self.decay(dtype), self.v_th, self.v_reset, self.decay_input, self.detach_reset, self.surrogate
        )

    def multi_step(self, x_seq: torch.Tensor, v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Explicit state: ``x_seq [T, B, ...]`` (``[B, T, ...]`` if batch_first) and membrane ``v [B, ...]``
        (None: at rest) -> ``(spikes, v)``. Reads and writes nothing on the module (``self.v`` is left alone).
        """
        p = self.parameters_for(state_dtype(x_seq.dtype))
        return lif_multi_step(x_seq, v, p, self.backend, self.batch_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes for ``x`` ([T, B, ...] in step mode 'm', [B, ...] in 's').

        A stateful neuron carries its membrane over from the last call; a stateless one starts from rest.
        """
        t = 1 if self.batch_first else 0  # the time axis
        x_seq = x.unsqueeze(t) if self.step_mode == "s" else x
        spikes, v = self.multi_step(x_seq, self.v if self.stateful else None)
        if self.stateful:
            self.v = v
        return spikes.squeeze(t) if self.step_mode == "s" else spikes

    def reset(self) -> None:
        self.v = None

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else self.v_reset
        return (f"v_th={self.v_th}, v_reset={reset}, surrogate={self.surrogate}, backend={self.backend!r}, "
                f"step_mode={self.step_mode!r}" + (", batch_first=True" if self.batch_first else "")
                + ("" if self.stateful else ", stateful=False"))


def _check_tau(name: str, tau) -> float:
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 1.0):
        raise ValueError(f"{name} must be a finite number > 1, got {tau!r}")
    return float(tau)


class LIF(_Neuron):
    """Leaky integrate-and-fire neuron (spikingjelly's LIFNode maths); see ``lif_multistep``.

    ``LIF(tau=2.0, v_th=1.0, v_reset=0.0, ...)``: the keyword options are listed on ``_Neuron``.
    """

    mode = CHARGE_LIF

    def __init__(self, tau: float = 2.0, **options):
        super().__init__(**options)
        self.tau = _check_tau("tau", tau)

    def decay(self, dtype):
        return self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()


class IF(_Neuron):
    """Integrate-and-fire neuron: ``H = V + X`` (no leak); the keyword options of ``_Neuron`` but decay_input."""

    mode = CHARGE_IF

    def __init__(self, **options):
        if "decay_input" in options:
            raise TypeError("IF has no leak, so no decay_input option")
        super().__init__(**options)

    def decay(self, dtype):
        return 1.0


class PLIF(_Neuron):
    """Parametric LIF: ``1/tau = sigmoid(w)`` with ``w`` learned, ``w0 = -ln(init_tau - 1)``; options as LIF."""

    mode = CHARGE_PLIF

    def __init__(self, init_tau: float = 2.0, **options):
        super().__init__(**options)
        self.w = nn.Parameter(torch.tensor(-math.log(_check_tau("init_tau", init_tau) - 1.0)))

    def decay(self, dtype):
        return self.w.to(dtype).sigmoid()

    @property
    def tau(self) -> float:
        return 1.0 / self.w.detach().sigmoid().item()
