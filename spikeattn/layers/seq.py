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
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF
from spikeattn.layers.checks import check_input
from spikeattn.neuron import LIF
from spikeattn.neuron.lif import _Neuron
from spikeattn.ops.lif import check_input as check_lif_input, resolve_backend
from spikeattn.ops.lif.bn import bn_lif_inference, exact_here
from spikeattn.ops.lif.bn_train import bn_lif_train, exact_here as exact_train_here
from spikeattn.ops.spike_linear import spike_linear

__all__ = ["NeuronSpec", "PerFrame", "LinearBN", "check_tokens", "fuse_bn_lif", "bn_lif", "residual", "watched"]


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

    def fire(self, x: torch.Tensor, lif: nn.Module, is_spikes: bool = False) -> torch.Tensor:
        """``lif(self(x))``: BN and the LIF in one pass where ``fuse_bn_lif`` says so, else the modules."""
        if not fuse_bn_lif(x, self.bn, lif, self, self.linear):
            return lif(self(x, is_spikes))
        return bn_lif(spike_linear(x, self.linear.weight, self.linear.bias, is_spikes), self.bn, lif, x.dim() - 1)


def fuse_bn_lif(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm, lif: nn.Module, *others: nn.Module) -> bool:
    """Whether ``lif(bn(layer(x)))`` may run as ``bn_lif(layer's output)``: nothing can tell the difference.

    Both need a stateless multi-step neuron on the CPU's fused backend, fp32, and no hooks on the
    modules (``others``: the other modules the unfused path calls, e.g. the Linear+BN block): an op
    counter or an exporter that watches them sees them run. Then either inference: an eval-mode BN
    with running statistics and no autograd recording (through ``x`` or any parameter of the
    modules); or training: a training-mode BN (batch statistics; not a subclass with its own forward,
    such as SyncBatchNorm) before an LIF or IF neuron, where ``spikeattn.ops.lif.bn_train`` gives the
    unfused spikes, running statistics and gradients.
    """
    if not (isinstance(lif, _Neuron) and not lif.stateful and lif.step_mode == "m" and not lif.batch_first
            and isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")):
        return False
    modules = (bn, lif, *others)
    if watched(*modules) or resolve_backend(lif.backend, x, lif.surrogate) != "cpu":
        return False
    if bn.training:  # a BN whose forward is not _BatchNorm's (SyncBatchNorm's batch statistics) runs itself
        return (type(bn).forward is nn.modules.batchnorm._BatchNorm.forward and lif.mode in (CHARGE_LIF, CHARGE_IF)
                and all(t.dtype == torch.float32 for t in bn.parameters()) and exact_train_here())
    if torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for m in modules for t in m.parameters())):
        return False
    return bn.running_mean is not None and exact_here()


def bn_lif(y: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm, lif: nn.Module, channel_dim: int) -> torch.Tensor:
    """``lif(bn(y))`` in one pass (``spikeattn.ops.lif.bn``, ``bn_train``: the same bits), where ``fuse_bn_lif``
    said so.

    ``y`` is a layer's own output, read by nothing else: in inference the spikes are written over it where
    it is contiguous (in training BN's backward needs it).
    """
    check_lif_input(y, "x_seq")
    p = lif.parameters_for(torch.float32)
    if bn.training:
        return bn_lif_train(y, bn, p, channel_dim)
    spikes, _ = bn_lif_inference(y, bn, p, channel_dim, overwrite=True)
    return spikes


def residual(x: torch.Tensor, branch: nn.Module) -> torch.Tensor:
    """``x + branch(x)``, the sum written over the branch's output where nothing else can hold it.

    That is where autograd records nothing and no hook watches the branch or its submodules (one could keep
    the output): the same bits (IEEE addition commutes) without a new tensor's memory stream.
    """
    y = branch(x)
    if (y.shape == x.shape and y.dtype == x.dtype and y.is_contiguous() and not watched(*branch.modules())
            and not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad))
            and y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()):
        return y.add_(x)
    return x + y


_HOOKS = ("_forward_hooks", "_forward_pre_hooks")


def watched(*modules: nn.Module) -> bool:
    """Whether forward hooks (on these modules, or global ones) would see these modules run: a fused path that
    skips calling them must then call them instead."""
    return any(getattr(m, h) for m in modules for h in _HOOKS) or any(
        getattr(nn.modules.module, f"_global{h}") for h in _HOOKS)
