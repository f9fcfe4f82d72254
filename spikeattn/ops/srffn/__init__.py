"""SpikeGPT's channel-mix core ``sigmoid(xr Wr^T) * (relu(xk Wk^T)^2 Wv^T)``: the public op and its backend table.

Backends: ``torch`` (``naive_srffn``: three ``F.linear``, relu^2, sigmoid gate; any device and dtype) and
``cpu`` (one registered op forward and one backward: the same GEMMs, its pointwise steps in place; see
``cpu.py``). ``auto`` picks ``cpu`` for fp32/fp64 CPU tensors with at least ``MIN_FUSED_NUMEL`` elements
in ``xk`` where the kernels build, else ``torch``.
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve_one_dtype
from spikeattn.ops.relu_square import MIN_FUSED_NUMEL
from spikeattn.ops.srffn import cpu
from spikeattn.ops.srffn import op as _op  # noqa: F401  (defines the torch.library ops)
from spikeattn.ops.srffn.reference import naive_srffn

__all__ = ["srffn", "naive_srffn", "BACKENDS", "resolve_backend"]


def fused_srffn(xk, xr, wk, wr, wv):
    return torch.ops.spikeattn.srffn(xk, xr, wk, wr, wv)[0]


BACKENDS = {"torch": naive_srffn, "cpu": fused_srffn}


def resolve_backend(backend: str, xk: torch.Tensor, *others: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32/fp64 CPU tensors of one dtype and device with ``MIN_FUSED_NUMEL`` or more
    elements in ``xk``, else ``torch``."""
    return resolve_one_dtype(backend, xk, "xk", others, cpu, MIN_FUSED_NUMEL)


def srffn(xk: torch.Tensor, xr: torch.Tensor, key_weight: torch.Tensor, receptance_weight: torch.Tensor,
          value_weight: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    r"""SpikeGPT's channel mix after its token shift: ``sigmoid(xr Wr^T) * (relu(xk Wk^T)^2 Wv^T)``.

    Args:
        xk, xr: ``[..., C]`` (the key and receptance mixes of the input).
        key_weight ``[H, C]``, receptance_weight ``[O, C]``, value_weight ``[O, H]``: bias-free Linear weights.
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``[..., O]``: the reference's values, bit for bit; gradients to fp32 rounding (the bits of autograd
        through the reference wherever a hidden unit's relu is 0 or in [1.1e-19, 1.8e19], fp32).
    """
    tensors = {"xk": xk, "xr": xr, "key_weight": key_weight, "receptance_weight": receptance_weight,
               "value_weight": value_weight}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    C, H, O = xk.shape[-1], key_weight.shape[0], value_weight.shape[0]
    if not (xr.shape == xk.shape and key_weight.shape == (H, C) and receptance_weight.shape == (O, C)
            and value_weight.shape == (O, H)):
        raise ValueError("srffn needs xk, xr [..., C] of one shape, key_weight [H, C], receptance_weight [O, C], "
                         "value_weight [O, H], got " + ", ".join(f"{n} {tuple(t.shape)}" for n, t in tensors.items()))
    return BACKENDS[resolve_backend(backend, xk, xr, key_weight, receptance_weight, value_weight)](
        xk, xr, key_weight, receptance_weight, value_weight)
