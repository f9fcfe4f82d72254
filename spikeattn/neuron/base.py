"""Stateful modules: the base class that ``spikeattn.reset`` looks for."""

from __future__ import annotations

from torch import nn


class MemoryModule(nn.Module):
    """A module that keeps state between calls (membrane, recurrent state); ``reset()`` clears it."""

    def reset(self) -> None:
        raise NotImplementedError


def reset(model: nn.Module) -> None:
    """Clear the state of every stateful module in ``model`` (call between independent samples)."""
    for module in model.modules():
        if isinstance(module, MemoryModule):
            module.reset()
