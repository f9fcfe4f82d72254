"""Figures of the model itself, not of a forward: footprint and connection sparsity (NeuroBench 2.3's
definitions, and ours over every weight the counted forward used)."""

from __future__ import annotations

import torch
from torch import nn

# NeuroBench's connection layers: weight only for these, every weight and bias of the recurrent ones.
_STATELESS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RECURRENT = (nn.RNNBase, nn.RNNCellBase)


def footprint_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer (NeuroBench's Footprint)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def zero_counts(model: nn.Module) -> dict[int, int]:
    """``{parameter storage: zero entries}``, one pass over each parameter."""
    return {p.untyped_storage().data_ptr(): p.numel() - int(torch.count_nonzero(p.detach()))
            for p in model.parameters() if p.numel()}


def _zeros(tensors, zeros: dict[int, int]) -> tuple[int, int]:
    found = [zeros.get(t.untyped_storage().data_ptr()) for t in tensors]
    n_zero = sum(z if z is not None else t.numel() - int(torch.count_nonzero(t)) for t, z in zip(tensors, found))
    return n_zero, sum(t.numel() for t in tensors)


def module_connections(model: nn.Module, zeros: dict[int, int]) -> tuple[int, int]:
    """(zero weights, weights) of the leaf Linear/Conv/RNN modules, as NeuroBench's ConnectionSparsity walks them."""
    tensors = []
    for module in model.modules():
        if next(module.children(), None) is not None:
            continue  # NeuroBench looks at leaves only
        if isinstance(module, _STATELESS):
            tensors.append(module.weight)
        elif isinstance(module, _RECURRENT):
            tensors += [p for name, p in module.named_parameters() if name.startswith(("weight", "bias"))]
    return _zeros([t.detach() for t in tensors], zeros)


def used_connections(model: nn.Module, used_storages: set[int], zeros: dict[int, int]) -> tuple[int, int]:
    """(zero weights, weights) of the parameters the counted forward read as weights of a matmul or conv
    (functional weights and attention projections included; each parameter once)."""
    params = {p.untyped_storage().data_ptr(): p for p in model.parameters() if p.numel()}
    return _zeros([params[s].detach() for s in sorted(used_storages) if s in params], zeros)
