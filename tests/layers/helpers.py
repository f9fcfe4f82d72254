"""Helpers for layer/model tests: inputs that make every neuron fire, and the no-silent-zero-grad check."""

from __future__ import annotations

import torch
from torch import nn


def active_batch(module: nn.Module, shape, rate: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Random 0/1 spikes of ``shape`` (requires_grad) for ``module``, with its BN biases set to 1.

    At initialisation BatchNorm gives N(0, 1) currents, and a LIF (tau 2, v_th 1) over T=2 steps
    then fires rarely: Q, K, V end up nearly empty and the attention LIF silent. Shifting every
    BatchNorm bias to 1 makes the neurons fire often but not always, so the surrogate passes a
    gradient to every weight.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.constant_(m.bias, 1.0)
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < rate).float().requires_grad_()


def assert_all_params_have_grad(module: nn.Module) -> None:
    """Every parameter got a gradient that is finite and not all zero."""
    bad = []
    for name, p in module.named_parameters():
        if p.grad is None:
            bad.append(f"{name}: None")
        elif not torch.isfinite(p.grad).all():
            bad.append(f"{name}: non-finite")
        elif not p.grad.abs().sum() > 0:
            bad.append(f"{name}: all zero")
    assert not bad, "parameters without a useful gradient: " + ", ".join(bad)
