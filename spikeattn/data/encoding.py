"""Turn an analog batch into a time-major input ``[T, B, ...]`` for a spiking network."""

from __future__ import annotations

import torch

from spikeattn._validate import check_int

__all__ = ["direct_encode", "poisson_encode"]


def direct_encode(x: torch.Tensor, T: int) -> torch.Tensor:
    """Repeat the analog input at every step: ``[B, ...] -> [T, B, ...]`` (a view, no copy).

    The first layer (conv + BN) then acts as the encoder that turns intensities into currents,
    as in Spikformer and most direct-training SNNs.
    """
    check_int(T, "T")
    return x.unsqueeze(0).expand(T, *x.shape)


def poisson_encode(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Rate coding: :math:`S_t \sim \text{Bernoulli}(x)` independently per step, ``[B, ...] -> [T, B, ...]``.

    Args:
        x: firing probabilities in [0, 1] (e.g. pixels / 255); values outside raise ValueError.
        T: number of steps.
        generator: a ``torch.Generator`` for reproducible spikes (default: the global RNG).

    Returns:
        Spikes of ``x``'s dtype (0 or 1), ``[T, *x.shape]``.
    """
    check_int(T, "T")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor of probabilities, got {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must hold probabilities in [0, 1], got range [{x.min().item()}, {x.max().item()}]")
    u = torch.rand((T, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)
