"""Shared pieces of the spiking layers: neuron settings, per-frame modules, spike-compact linear.

Everything here works on time-major tensors ``[T, B, ...]``. Modules that know nothing about
time (Conv2d, BatchNorm, MaxPool) see ``T * B`` frames through ``PerFrame``; BatchNorm thus
normalises over time and batch together, as in Spikformer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from spikeattn import surrogate as sg
from spikeattn.neuron import LIF
from spikeattn.ops.linear import linear
from spikeattn.ops.spike_linear import cpu as spike_linear_cpu
from spikeattn.ops.spike_linear import spike_grad_weight

__all__ = ["NeuronSpec", "PerFrame", "LinearBN", "spike_linear", "check_tokens", "compact_spikes"]


@dataclass(frozen=True)
class NeuronSpec:
    """LIF settings shared by every neuron of a layer (Spikformer's defaults)."""

    tau: float = 2.0
    v_reset: float | None = 0.0            # hard reset to 0; None = soft reset
    detach_reset: bool = True
    surrogate: sg.Surrogate = sg.Sigmoid(alpha=4.0)
    backend: str = "auto"                   # spikeattn.ops.lif backend: auto / torch / cpu / cupy

    def make(self, v_th: float = 1.0) -> LIF:
        return LIF(tau=self.tau, v_th=v_th, v_reset=self.v_reset, detach_reset=self.detach_reset,
                   surrogate=self.surrogate, backend=self.backend)


def check_tokens(x: torch.Tensor, dim: int, name: str = "x") -> None:
    """Raise unless ``x`` is a floating ``[T, B, N, dim]`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be time-major tokens [T, B, N, C] (4 dims), got shape {tuple(x.shape)}")
    if x.shape[-1] != dim:
        raise ValueError(f"{name} must have last dim C={dim}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")


class PerFrame(nn.Sequential):
    """Apply frame-wise modules to ``[T, B, ...]`` by folding time into the batch: ``[T*B, ...]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = super().forward(x.flatten(0, 1))  # (T*B, ...)
        return y.unflatten(0, (t, b))         # (T, B, ...)


def compact_spikes(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` as uint8 when it holds only integers 0..255 (spikes, spike sums), else None.

    One elementwise pass; it lets backward keep 1 byte per value instead of 4. Skipped under
    torch.compile (a data-dependent branch would break the graph).
    """
    if torch.compiler.is_compiling() or not x.is_floating_point():
        return None
    if x.device.type == "cpu" and x.dtype == torch.float32 and spike_linear_cpu.is_available():
        return spike_linear_cpu.to_uint8_exact(x)  # the check and the copy in one pass
    small = x.to(torch.uint8)
    return small if torch.equal(small.to(x.dtype), x) else None


class _SpikeLinear(torch.autograd.Function):
    """``x @ W^T + b`` that saves an integer-valued ``x`` as uint8 for the weight gradient.

    Its GEMMs go through ``spikeattn.ops.linear`` (oneDNN for fp32 on the CPU: autograd is off here).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, is_spikes):
        y = linear(x, weight, bias)
        small = x.to(torch.uint8) if is_spikes else compact_spikes(x)
        ctx.save_for_backward(x if small is None else small, weight)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = linear(grad_y, weight.to(grad_y.dtype).T)
        if ctx.needs_input_grad[1]:
            g2, x2 = grad_y.reshape(-1, grad_y.shape[-1]), x.reshape(-1, x.shape[-1])
            # uint8 input: a gather-sum over its nonzeros (a fifth of the dense GEMM at 20% spikes)
            grad_w = spike_grad_weight(g2, x2) if x.dtype == torch.uint8 else linear(g2.T, x2.to(g2.dtype).T)
            grad_w = grad_w.to(weight.dtype)
        if ctx.needs_input_grad[2]:
            grad_b = grad_y.reshape(-1, grad_y.shape[-1]).sum(0)
        return grad_x, grad_w, grad_b, None


def spike_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 is_spikes: bool = False) -> torch.Tensor:
    """``F.linear`` whose backward keeps integer inputs (spikes, spike sums) in 1 byte.

    ``is_spikes=True`` promises ``x`` holds only 0/1 (a LIF output) and skips the check.
    """
    if torch.is_autocast_enabled(x.device.type):
        return F.linear(x, weight, bias)  # autocast casts inside F.linear; keep its rules
    if not weight.requires_grad:
        return linear(x, weight, bias)
    return _SpikeLinear.apply(x, weight, bias, is_spikes)


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
