"""Surrogate gradients: Heaviside forward, a smooth function's derivative backward.

Each surrogate is a small frozen dataclass with one parameter. Kernels receive it as
``(kind_id, param)``; the closed-form derivative is written once in torch here (the oracle)
and once in ``cuda/surrogate.cuh`` (the kernels), and tests hold the two equal.

Example:
    >>> s = ATan(alpha=2.0)
    >>> x = torch.tensor([-1.0, 0.0, 0.5], requires_grad=True)
    >>> s(x)                      # tensor([0., 1., 1.])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Surrogate", "ATan", "Sigmoid", "FastSigmoid", "Triangle", "Rectangle", "surrogate_grad"]

# Must match `enum SurrogateId` in cuda/surrogate.cuh.
SURROGATE_IDS = {"ATan": 0, "Sigmoid": 1, "FastSigmoid": 2, "Triangle": 3, "Rectangle": 4}


def surrogate_grad(kind: int, a: float, x: torch.Tensor) -> torch.Tensor:
    r"""Closed-form surrogate derivative :math:`g'(x)`, computed in at least fp32.

    Args:
        kind: surrogate id (``SURROGATE_IDS``).
        a: the surrogate's parameter.
        x: ``h - v_th``, any shape.

    Returns:
        ``g'(x)`` in ``x.dtype``; finite for every finite ``x``.
    """
    z = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if kind == 0:  # ATan: a / 2 / (1 + (pi/2 a x)^2)
        w = z * (math.pi / 2 * a)
        g = (a / 2) / (1 + w * w)
    elif kind == 1:  # Sigmoid: a sig(a x) (1 - sig(a x)); torch.sigmoid never overflows
        s = torch.sigmoid(a * z)
        g = a * s * (1 - s)
    elif kind == 2:  # FastSigmoid: 1 / (a|x| + 1)^2
        d = a * z.abs() + 1
        g = 1 / (d * d)
    elif kind == 3:  # Triangle: max(0, (1/a)^2 (a - |x|))
        g = ((1 / a) * (1 / a) * (a - z.abs())).clamp_min(0)
    elif kind == 4:  # Rectangle: 1/a inside |x| < a/2
        g = (z.abs() < a / 2).to(z.dtype) / a
    else:
        raise ValueError(f"unknown surrogate id {kind}; expected one of {sorted(SURROGATE_IDS.values())}")
    return g.to(x.dtype)


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, kind: int, a: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.kind, ctx.a = kind, a
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(ctx.kind, ctx.a, x), None, None


@dataclass(frozen=True)
class Surrogate:
    """Base: subclasses name their one parameter; `param` returns it for kernels."""

    @property
    def id(self) -> int:
        return SURROGATE_IDS[type(self).__name__]

    @property
    def param(self) -> float:
        return float(getattr(self, self._param_name))

    _param_name = "alpha"

    def __post_init__(self):
        value = getattr(self, self._param_name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{type(self).__name__}: {self._param_name} must be a finite number > 0, got {value!r}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Spike = Heaviside(x) with ``x >= 0``; backward uses :meth:`grad`."""
        return _Heaviside.apply(x, self.id, self.param)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return surrogate_grad(self.id, self.param, x)


@dataclass(frozen=True)
class ATan(Surrogate):
    alpha: float = 2.0


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    alpha: float = 4.0


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    slope: float = 25.0
    _param_name = "slope"


@dataclass(frozen=True)
class Triangle(Surrogate):
    gamma: float = 1.0
    _param_name = "gamma"


@dataclass(frozen=True)
class Rectangle(Surrogate):
    width: float = 1.0
    _param_name = "width"
