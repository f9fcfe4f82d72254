"""Input checks shared by the ops, and the debug switch that turns on the costly ones."""

from __future__ import annotations

import contextlib
import contextvars

import torch

_DEBUG = contextvars.ContextVar("spikeattn_debug", default=False)


@contextlib.contextmanager
def debug(enabled: bool = True):
    """Within this block, ops also check their inputs for NaN/inf (a device sync per call)."""
    token = _DEBUG.set(enabled)
    try:
        yield
    finally:
        _DEBUG.reset(token)


def check_finite(x: torch.Tensor, name: str) -> None:
    if torch.compiler.is_compiling():  # a compiled graph cannot sync on data; check eagerly instead
        return
    if _DEBUG.get() and not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN/inf values (found by spikeattn.debug())")


def check_tensors(dim: int, layout: str = "", **tensors) -> None:
    """Each keyword a ``torch.Tensor`` of ``dim`` dims (TypeError / ValueError naming it); ``layout`` names the dims."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != dim:
            raise ValueError(f"{name} must be {dim}-D{' ' + layout if layout else ''}, got shape {tuple(t.shape)}")

