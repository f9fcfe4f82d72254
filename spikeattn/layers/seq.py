"""Shared pieces of the spiking layers: neuron settings, per-frame modules, Linear + BatchNorm.

Everything here works on time-major tensors ``[T, B, ...]``. Modules that know nothing about
time (Conv2d, BatchNorm, MaxPool) see ``T * B`` frames through ``PerFrame``; BatchNorm thus
normalises over time and batch together, as in Spikformer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spikeattn import surrogate as sg
from spikeattn.layers.checks import check_input
from spikeattn.neuron import LIF
from spikeattn.ops.spike_linear import spike_linear

__all__ = ["NeuronSpec", "PerFrame", "LinearBN", "check_tokens"]


@dataclass(frozen=True)
class NeuronSpec:
    """LIF settings shared by every neuron of a layer (Spikformer's defaults)."""

    tau: float = 2.0
    v_reset: float | None = 0.0            # hard reset to 0; None = soft reset
    detach_reset: bool = True
    surrogate: sg.Surrogate = sg.Sigmoid(alpha=4.0)
    backend: str = "auto"                   # spikeattn.ops.lif backend: auto / torch / cpu / cupy

    def make(self, v_th: float = 1.0) -> LIF:
        """A stateless LIF (every call from rest, nothing kept): layers stay pure functions of their input."""
        return LIF(tau=self.tau, v_th=v_th, v_reset=self.v_reset, detach_reset=self.detach_reset,
                   surrogate=self.surrogate, backend=self.backend, stateful=False)


def check_tokens(x: torch.Tensor, dim: int, name: str = "x", module: nn.Module | None = None) -> None:
    """Raise unless ``x`` is a floating ``[T, B, N, dim]`` tensor (fitting ``module``: dtype, BatchNorm batch)."""
    check_input(x, module if module is not None else nn.Identity(), "T B N C", name, C=dim)


class PerFrame(nn.Sequential):
    """Apply frame-wise modules to ``[T, B, ...]`` by folding time into the batch: ``[T*B, ...]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = super().forward(x.flatten(0, 1))  # (T*B, ...)
        return y.unflatten(0, (t, b))         # (T, B, ...)


class LinearBN(nn.Module):
    """Linear (no bias) then BatchNorm1d over every token of every frame: ``[..., C_in] -> [..., C_out]``.

    The Spikformer code gives these Linears a bias, but BatchNorm subtracts the batch mean right
    after, so that bias never gets a gradient (a dead parameter); BN's own shift replaces it.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor, is_spikes: bool = False) -> torch.Tensor:
        """``is_spikes=True``: ``x`` is a LIF output (0/1), stored for backward without a check."""
        y = spike_linear(x, self.linear.weight, self.linear.bias, is_spikes)
        return self.bn(y.reshape(-1, y.shape[-1])).reshape(y.shape)  # BN over (T*B*N, C)
