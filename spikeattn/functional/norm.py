"""Batch normalisation whose statistics count only the visible positions of a masked batch."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["masked_batch_norm"]


def masked_batch_norm(x: torch.Tensor, visible: torch.Tensor, running_mean: torch.Tensor | None,
                      running_var: torch.Tensor | None, weight: torch.Tensor | None = None,
                      bias: torch.Tensor | None = None, training: bool = False, momentum: float = 0.1,
                      eps: float = 1e-5) -> torch.Tensor:
    r"""``F.batch_norm`` of ``x [N, C, ...]`` with batch statistics over the positions where ``visible`` is 1.

    SparK's "sparse BN" for masked-image pretraining through convolutions: a masked batch is mostly
    zeros (75% at MAE's ratio), and plain BN would fold them into its mean and variance, so the
    stem would learn its affine parameters for a scale it never sees again once the mask is gone.
    Here the statistics are those of the visible values alone, exactly what ``F.batch_norm`` gives
    on the visible values gathered into one batch (running statistics updated the same way, with the
    unbiased variance). Masked positions come out as ``bias``-shifted garbage: re-mask them after.

    Args:
        x: ``[N, C, *spatial]``.
        visible: 0/1 weights broadcastable to ``[N, 1, *spatial]`` (1 = visible).
        running_mean, running_var, weight, bias, training, momentum, eps: as ``F.batch_norm``
            (eval mode, or no running statistics in eval mode, is plain ``F.batch_norm``).
    """
    if not training:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    dims = [0, *range(2, x.dim())]
    m = visible.to(x.dtype).expand(x.shape[0], 1, *x.shape[2:])
    n = m.sum()
    if n < 2:
        raise ValueError(f"masked_batch_norm needs at least 2 visible positions per channel, got {int(n.item())}")
    mean = (x * m).sum(dims) / n
    centred = x - _channel(mean, x)
    var = (centred * m).square().sum(dims) / n  # biased: what normalises, as BN
    if running_mean is not None:
        with torch.no_grad():
            running_mean.lerp_(mean.detach(), momentum)
            running_var.lerp_(var.detach() * (n / (n - 1)), momentum)
    y = centred * _channel(torch.rsqrt(var + eps), x)
    if weight is not None:
        y = y * _channel(weight, x)
    if bias is not None:
        y = y + _channel(bias, x)
    return y


def _channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(1, -1, *([1] * (like.dim() - 2)))
