"""LIF, IF and PLIF neurons: thin modules over ``spikeattn.ops.lif``.

Each module holds its constants and the membrane between calls; the maths lives in
``spikeattn.functional.neuron`` and the kernels in ``spikeattn.ops.lif``.
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
    """Shared by LIF/IF/PLIF: the membrane, step modes and the call into the op."""

    mode = CHARGE_LIF

    def __init__(self, v_th, v_reset, decay_input, detach_reset, surrogate, backend, step_mode):
        super().__init__()
        if step_mode not in ("m", "s"):
            raise ValueError(f"step_mode must be 'm' (input [T, B, ...]) or 's' (input [B, ...]), got {step_mode!r}")
        check_thresholds(v_th, v_reset)
        self.v_th, self.v_reset = v_th, v_reset
        self.decay_input, self.detach_reset = decay_input, detach_reset
        self.surrogate, self.backend, self.step_mode = surrogate, backend, step_mode
        self.v: torch.Tensor | None = None

    def decay(self, dtype: torch.dtype):
        raise NotImplementedError

    def parameters_for(self, dtype: torch.dtype) -> LIFParameters:
        return LIFParameters(
            self.mode, self.decay(dtype), self.v_th, self.v_reset, self.decay_input, self.detach_reset, self.surrogate
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes for ``x`` ([T, B, ...] in step mode 'm', [B, ...] in 's'); the membrane carries over."""
        x_seq = x.unsqueeze(0) if self.step_mode == "s" else x
        p = self.parameters_for(state_dtype(x.dtype))
        spikes, self.v = lif_multi_step(x_seq, self.v, p, self.backend)
        return spikes[0] if self.step_mode == "s" else spikes

    def reset(self) -> None:
        self.v = None

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else self.v_reset
        return f"v_th={self.v_th}, v_reset={reset}, surrogate={self.surrogate}, backend={self.backend!r}, step_mode={self.step_mode!r}"


class LIF(_Neuron):
    """Leaky integrate-and-fire neuron (spikingjelly's LIFNode maths); see ``lif_multistep``."""

    mode = CHARGE_LIF

    def __init__(self, tau: float = 2.0, v_th: float = 1.0, v_reset: float | None = 0.0, decay_input: bool = True,
                 detach_reset: bool = False, surrogate: sg.Surrogate = sg.ATan(2.0), backend: str = "auto",
                 step_mode: str = "m"):
        super().__init__(v_th, v_reset, decay_input, detach_reset, surrogate, backend, step_mode)
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 1.0):
            raise ValueError(f"tau must be a finite number > 1, got {tau!r}")
        self.tau = float(tau)

    def decay(self, dtype):
        return self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()


class IF(_Neuron):
    """Integrate-and-fire neuron: ``H = V + X`` (no leak)."""

    mode = CHARGE_IF

    def __init__(self, v_th: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = False,
                 surrogate: sg.Surrogate = sg.ATan(2.0), backend: str = "auto", step_mode: str = "m"):
        super().__init__(v_th, v_reset, True, detach_reset, surrogate, backend, step_mode)

    def decay(self, dtype):
        return 1.0


class PLIF(_Neuron):
    """Parametric LIF: ``1/tau = sigmoid(w)`` with ``w`` learned, ``w0 = -ln(init_tau - 1)``."""

    mode = CHARGE_PLIF

    def __init__(self, init_tau: float = 2.0, v_th: float = 1.0, v_reset: float | None = 0.0, decay_input: bool = True,
                 detach_reset: bool = False, surrogate: sg.Surrogate = sg.ATan(2.0), backend: str = "auto",
                 step_mode: str = "m"):
        super().__init__(v_th, v_reset, decay_input, detach_reset, surrogate, backend, step_mode)
        if not (isinstance(init_tau, (int, float)) and math.isfinite(init_tau) and init_tau > 1.0):
            raise ValueError(f"init_tau must be a finite number > 1, got {init_tau!r}")
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def decay(self, dtype):
        return self.w.to(dtype).sigmoid()

    @property
    def tau(self) -> float:
        return 1.0 / self.w.detach().sigmoid().item()
