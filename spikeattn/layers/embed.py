"""SPS: Spikformer's spiking patch splitting (the convolutional stem that makes tokens)."""

from __future__ import annotations

import torch
from torch import nn

from spikeattn.layers.seq import NeuronSpec, PerFrame

__all__ = ["SPS", "ConvBNLIF", "sps_grid"]


def _pooled(size: int, n_pools: int) -> int:
    for _ in range(n_pools):
        size = (size - 1) // 2 + 1  # MaxPool2d(3, stride 2, padding 1) rounds up
    return size


def sps_grid(img_size: tuple[int, int], n_pools: int) -> tuple[int, int]:
    """Token grid ``(H', W')`` after ``n_pools`` max-pools of an ``img_size`` image."""
    return _pooled(img_size[0], n_pools), _pooled(img_size[1], n_pools)


class ConvBNLIF(nn.Module):
    """Conv3x3 (no bias) - BN - LIF on ``[T, B, C_in, H, W]``, then an optional MaxPool(3, 2, 1)."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool, neuron: NeuronSpec):
        super().__init__()
        self.conv = PerFrame(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                             nn.BatchNorm2d(out_channels))
        self.lif = neuron.make()
        # Pooling spikes (after the LIF, as the V1 code does) keeps the output binary.
        self.pool = PerFrame(nn.MaxPool2d(3, stride=2, padding=1)) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.lif(self.conv(x)))


class SPS(nn.Module):
    r"""Spiking patch splitting: images ``[T, B, C_in, H, W]`` -> tokens ``[T, B, N, C]``.

    Four Conv3x3-BN-LIF stages with ``C/8 -> C/4 -> C/2 -> C`` channels, a MaxPool(3, 2, 1) after
    the stages listed in ``pool_stages``, then a Conv3x3-BN-LIF relative position branch added back:

    .. math::
        F = \mathrm{stages}(X),\quad Y = F + \mathrm{LIF}(\mathrm{BN}(\mathrm{Conv}(F)))

    ``Y`` holds 0, 1 or 2 (a spike sum). ``N = H' W'`` with each pool halving a side (rounding up).

    Args:
        in_channels: image channels (3 RGB, 1 grey, 2 DVS polarities).
        dim: token channels C (divisible by 8).
        img_size: ``H`` (square) or ``(H, W)``; inputs of another size raise ValueError.
        pool_stages: indices (0..3) of the stages followed by a max-pool. Spikformer: CIFAR
            ``(2, 3)`` (32 -> 8), ImageNet and DVS ``(0, 1, 2, 3)`` (224 -> 14, 128 -> 8).
        neuron: LIF settings.

    Example:
        >>> sps = SPS(in_channels=1, dim=64, img_size=28, pool_stages=(1, 2))
        >>> sps(torch.rand(4, 2, 1, 28, 28)).shape       # [T, B, 7*7, 64]
    """

    def __init__(self, in_channels: int, dim: int, img_size: int | tuple[int, int],
                 pool_stages: tuple[int, ...] = (2, 3), neuron: NeuronSpec | None = None):
        super().__init__()
        if not (isinstance(dim, int) and dim >= 8 and dim % 8 == 0):
            raise ValueError(f"dim must be a positive multiple of 8 (stages use C/8, C/4, C/2), got {dim!r}")
        if not (isinstance(in_channels, int) and in_channels >= 1):
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        pool_stages = tuple(pool_stages)
        if len(set(pool_stages)) != len(pool_stages) or not all(i in range(4) for i in pool_stages):
            raise ValueError(f"pool_stages must be distinct stage indices in 0..3, got {pool_stages!r}")
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if len(self.img_size) != 2 or min(self.img_size) < 1:
            raise ValueError(f"img_size must be a positive int or (H, W), got {img_size!r}")
        neuron = neuron or NeuronSpec()
        self.in_channels, self.dim, self.pool_stages = in_channels, dim, pool_stages
        widths = [in_channels, dim // 8, dim // 4, dim // 2, dim]
        self.stages = nn.Sequential(*(
            ConvBNLIF(widths[i], widths[i + 1], i in pool_stages, neuron) for i in range(4)
        ))
        self.rpe = ConvBNLIF(dim, dim, False, neuron)
        self.grid = sps_grid(self.img_size, len(pool_stages))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C_in, H, W]`` -> ``[T, B, N, C]``."""
        expected = (self.in_channels, *self.img_size)
        if x.dim() != 5 or tuple(x.shape[2:]) != expected:
            raise ValueError(
                f"SPS expects images [T, B, {', '.join(map(str, expected))}] (in_channels, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        f = self.stages(x)                     # (T, B, C, H', W')
        y = f + self.rpe(f)
        return y.flatten(3).transpose(2, 3).contiguous()  # (T, B, N, C)

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, dim={self.dim}, img_size={self.img_size}, pool_stages={self.pool_stages}"
