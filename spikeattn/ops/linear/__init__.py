"""Dense Linear ``y = x @ W^T + b``: the public op and its backend table.

Backends: ``torch`` (``F.linear``, the oracle) and ``onednn`` (oneDNN's fp32 GEMM, 2.2-2.4x MKL's on
an AMD EPYC with AVX-512, 0.73-0.97x on one with AVX2 only, 0.82-0.97x on an Intel Xeon; see ``onednn.py``).
``auto`` picks ``onednn`` on AMD CPUs with AVX-512 for
fp32 CPU tensors outside autograd whose GEMM is large enough to repay its call overhead, else ``torch``,
whether or not a dispatch mode (an op counter, a tracer) is watching. ``spikeattn::spike_linear`` calls it for its
forward and both backward GEMMs.
"""

from __future__ import annotations

import torch

from spikeattn.ops.linear import onednn
from spikeattn.ops.linear.onednn import onednn_linear
from spikeattn.ops.linear.reference import torch_linear

__all__ = ["linear", "BACKENDS", "resolve_backend", "MIN_ONEDNN_MACS"]

BACKENDS = {"torch": torch_linear, "onednn": onednn_linear}
MIN_ONEDNN_MACS = 1 << 19  # below ~0.5M multiply-adds the call overhead outweighs the faster GEMM


def resolve_backend(backend: str, x: torch.Tensor, weight: torch.Tensor) -> str:
    """``auto`` -> ``onednn`` where it runs and pays off (AMD CPUs with AVX-512), else ``torch``; explicit names are checked.

    ``onednn`` has no autograd formula: ``auto`` takes it only where autograd is not recording
    (inside a custom Function, under no_grad), and ``backend='onednn'`` refuses tracked inputs.
    A dispatch mode changes nothing here: a counter that wants these GEMMs counts oneDNN's op
    (``spikeattn.opcount`` has a rule for it) or the op that called it.
    """
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be one of {('auto', *BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return backend
    fits = (x.device.type == "cpu" and weight.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and onednn.is_available())
    tracked = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if backend == "onednn":
        if not fits:
            raise ValueError(f"backend='onednn' needs fp32 CPU tensors and a torch built with oneDNN, got x "
                             f"{x.dtype} on {x.device}, weight {weight.dtype} on {weight.device}")
        if tracked:
            raise ValueError("backend='onednn' has no autograd: call it under torch.no_grad() or inside a Function")
        return backend
    big = x.numel() * weight.shape[0] >= MIN_ONEDNN_MACS
    return "onednn" if fits and big and not tracked and onednn.pays_off() else "torch"


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           backend: str = "auto") -> torch.Tensor:
    """``x [..., I] @ weight[O, I]^T + bias[O]`` -> ``[..., O]``; backends as ``resolve_backend``."""
    if x.shape[-1] != weight.shape[-1] or weight.dim() != 2:
        raise ValueError(f"x {tuple(x.shape)} and weight {tuple(weight.shape)} do not match: "
                         "weight must be [out_features, in_features] with in_features == x.shape[-1]")
    return BACKENDS[resolve_backend(backend, x, weight)](x, weight, bias)
