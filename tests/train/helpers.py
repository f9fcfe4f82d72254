"""A tiny spiking classifier and a synthetic dataset shared by the trainer tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from spikeattn.neuron import LIF

T = 3


def tiny_model(seed: int = 0, features: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 16), LIF(tau=2.0), nn.Linear(16, classes))


def direct_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[B, F] -> repeat T times -> model on [T, B, F] -> mean logits over time."""
    return model(x.unsqueeze(0).expand(T, *x.shape)).mean(0)


def noisy_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Like direct_forward plus Gaussian noise from the GLOBAL RNG, so a resume must restore it."""
    if model.training:
        x = x + 0.3 * torch.randn_like(x)
    return direct_forward(model, x)


def blobs(n: int = 40, features: int = 6, classes: int = 3, seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centers = 2.0 * torch.randn(classes, features, generator=g)
    return TensorDataset(centers[y] + torch.randn(n, features, generator=g), y)
