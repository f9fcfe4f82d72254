"""Input checks at the public boundary of layers and models: a clear ValueError/TypeError naming the argument,
the expected and the given value, instead of an error from deep inside torch (a conv's dtype mismatch,
BatchNorm's batch-size assertion, a reshape of an empty tensor)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_input"]


def check_input(x, module: nn.Module, layout: str, name: str = "x", bn_values: int | None = None, **sizes: int) -> None:
    """Raise unless ``x`` fits ``module``.

    Args:
        x: the input.
        module: the layer or model (its parameter dtype and training mode are checked against).
        layout: the dims by name, e.g. ``"T B N C"``; each must be non-empty.
        name: the argument's name in messages.
        bn_values: in training mode, the values per channel that the module's BatchNorms see
            (default: all but the last dim); BatchNorm needs more than one.
        sizes: required sizes by dim name, e.g. ``C=16``.
    """
    dims = layout.split()
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [{', '.join(dims)}], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    if x.dim() != len(dims):
        raise ValueError(f"{name} must be [{', '.join(dims)}] ({len(dims)} dims), got shape {tuple(x.shape)}")
    for i, (dim, size) in enumerate(zip(dims, x.shape)):
        if dim in sizes and size != sizes[dim]:
            where = "last dim " if i == len(dims) - 1 else ""
            raise ValueError(f"{name} must have {where}{dim}={sizes[dim]} in [{', '.join(dims)}], got shape {tuple(x.shape)}")
        if size == 0:
            raise ValueError(f"{name} has an empty dimension {dim}=0, shape {tuple(x.shape)}")
    check_dtype(x, module, name)
    if module.training and _has_batch_norm(module):
        count = x.numel() // x.shape[-1] if bn_values is None else bn_values
        if count <= 1:
            raise ValueError(f"{type(module).__name__} in training mode normalises over a batch (BatchNorm) and needs "
                             f"more than one value per channel, got shape {tuple(x.shape)}; call .eval() to run a "
                             f"single sample, or give a larger batch")


def check_dtype(x: torch.Tensor, module: nn.Module, name: str = "x") -> None:
    """``x`` in the module's parameter dtype (under autocast, torch casts per op, so any float goes)."""
    param = next(module.parameters(), None)
    if param is None or x.dtype == param.dtype or torch.is_autocast_enabled(x.device.type):
        return
    raise TypeError(f"{name} is {x.dtype} but {type(module).__name__}'s parameters are {param.dtype}: convert the input "
                    f"(x.to({param.dtype})) or the model (model.to({x.dtype})), or run under torch.autocast")


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
