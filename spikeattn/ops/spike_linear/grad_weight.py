"""Weight gradient of a Linear fed with spikes: its public function and its one backend table.

Backends: ``torch`` (one dense matmul, the oracle) and ``cpu`` (a gather-sum over the nonzero
inputs: ``nnz(x) * O`` additions instead of ``M * O * I`` multiply-adds). ``auto`` picks ``cpu``
for fp32 gradients on the CPU, else ``torch`` (CUDA matmuls are fast enough).
"""

from __future__ import annotations

import torch

from spikeattn.ops._backends import resolve_cpu_fp32
from spikeattn.ops._checks import check_tensors
from spikeattn.ops.spike_linear import cpu
from spikeattn.ops.spike_linear.reference import naive_spike_grad_weight

__all__ = ["spike_grad_weight", "BACKENDS", "resolve_backend"]


def fused_spike_grad_weight(grad_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.ops.spikeattn.spike_grad_weight(grad_y, x)


BACKENDS = {"torch": naive_spike_grad_weight, "cpu": fused_spike_grad_weight}


def resolve_backend(backend: str, grad_y: torch.Tensor) -> str:
    """``auto`` -> ``cpu`` for fp32 on the CPU (the kernel's one dtype), else ``torch``."""
    return resolve_cpu_fp32(backend, grad_y, "grad_y", cpu, "spike_grad_weight")


def spike_grad_weight(grad_y: torch.Tensor, x: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    r"""Weight gradient :math:`\partial L / \partial W = G^\top X` of ``y = x @ W^T`` with integer inputs.

    Args:
        grad_y: ``[M, O]`` floating point, the gradient of the Linear's output (tokens flattened).
        x: ``[M, I]`` uint8, the Linear's input (0/1 spikes, or counts up to 255), same device.
        backend: ``auto``, ``torch`` or ``cpu``.

    Returns:
        ``[O, I]`` in grad_y's dtype. Each entry sums its tokens in increasing order on ``cpu``
        (deterministic for any thread count); it equals the dense matmul up to fp32 rounding.
    """
    check_tensors(2, "(tokens flattened)", grad_y=grad_y, x=x)
    if not grad_y.is_floating_point():
        raise TypeError(f"grad_y must be floating point, got {grad_y.dtype}")
    if x.dtype != torch.uint8:
        raise TypeError(f"x must be uint8 (spikes or small counts), got {x.dtype}")
    if x.shape[0] != grad_y.shape[0] or x.device != grad_y.device:
        raise ValueError(f"x {tuple(x.shape)} on {x.device} must match grad_y {tuple(grad_y.shape)} "
                         f"on {grad_y.device} in rows and device")
    return BACKENDS[resolve_backend(backend, grad_y)](grad_y, x)
