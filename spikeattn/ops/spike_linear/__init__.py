"""Linear layers fed with spikes: ``spike_linear`` (the op) and its weight gradient ``spike_grad_weight``.

``spike_linear`` is one registered op (``spikeattn::spike_linear``): its GEMMs go through
``spikeattn.ops.linear`` and its backward keeps integer inputs in 1 byte. ``spike_grad_weight``
has the backends ``torch`` (one dense matmul, the oracle) and ``cpu`` (a gather-sum over the
nonzero inputs); see ``grad_weight.py``. The oracles are in ``reference.py``.
"""

from __future__ import annotations

import torch

from spikeattn.ops.spike_linear import linear_op as _linear_op  # noqa: F401  (defines the torch.library op)
from spikeattn.ops.spike_linear.compact import compact_spikes
from spikeattn.ops.spike_linear.grad_weight import BACKENDS, resolve_backend, spike_grad_weight

__all__ = ["spike_linear", "spike_grad_weight", "compact_spikes", "BACKENDS", "resolve_backend"]


def spike_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 is_spikes: bool = False) -> torch.Tensor:
    """``x [..., I] @ weight[O, I]^T + bias[O]`` -> ``[..., O]``, keeping integer inputs in 1 byte for backward.

    Args:
        x: ``[..., I]`` floating point (spikes, spike sums or real values).
        weight: ``[O, I]``; bias: ``[O]`` or None; same dtype and device as ``x``.
        is_spikes: promises ``x`` holds only 0/1 (a LIF output): stored for backward without a check.

    Under autocast the operands are cast to the autocast dtype first, as ``F.linear`` would.
    """
    if x.shape[-1] != weight.shape[-1] or weight.dim() != 2:
        raise ValueError(f"x {tuple(x.shape)} and weight {tuple(weight.shape)} do not match: "
                         "weight must be [out_features, in_features] with in_features == x.shape[-1]")
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    return torch.ops.spikeattn.spike_linear(x, weight, bias, bool(is_spikes))
