"""Convolutional stems that make tokens: SPS (Spikformer's spiking patch splitting) and SCS (V2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spikeattn._validate import check_int
from spikeattn.functional.norm import masked_batch_norm
from spikeattn.layers.checks import check_input
from spikeattn.layers.seq import NeuronSpec, PerFrame, bn_lif, fuse_bn_lif, residual, watched
from spikeattn.ops.spike_conv import spike_conv2d
from spikeattn.ops.spike_pool import spike_pool

__all__ = ["SPS", "SCS", "ConvBNLIF", "sps_grid"]


def _pooled(size: int, n_pools: int) -> int:
    for _ in range(n_pools):
        size = (size - 1) // 2 + 1  # MaxPool2d(3, stride 2, padding 1) rounds up
    return size


def sps_grid(img_size: tuple[int, int], n_pools: int) -> tuple[int, int]:
    """Token grid ``(H', W')`` after ``n_pools`` max-pools of an ``img_size`` image."""
    return _pooled(img_size[0], n_pools), _pooled(img_size[1], n_pools)


class ConvBNLIF(nn.Module):
    """Conv3x3 (no bias) - BN - LIF on ``[T, B, C_in, H, W]``, then an optional MaxPool(3, 2, 1).

    ``spike_input=True`` (inputs are spikes or spike counts, not images): fp32 CPU training runs the
    conv as ``spikeattn.ops.spike_conv.spike_conv2d``, the same forward bits with the input kept in
    1 byte for backward and a weight gradient summed over the nonzero inputs.
    """

    def __init__(self, in_channels: int, out_channels: int, pool: bool, neuron: NeuronSpec,
                 spike_input: bool = False):
        super().__init__()
        self.conv = PerFrame(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                             nn.BatchNorm2d(out_channels))
        self.spike_input = spike_input
        self.lif = neuron.make()
        # Pooling spikes (after the LIF, as the V1 code does) keeps the output binary. The module holds
        # the pool's settings (state_dict, repr and the exporters read it); pool_spikes() runs them.
        self.pool = PerFrame(nn.MaxPool2d(3, stride=2, padding=1)) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C_in, H, W] -> [T, B, C_out, H', W']`` spikes.

        A time stride of 0 (an ``expand``-ed frame: direct encoding) means every frame is the same
        image: the conv then runs once on the B images and its output is repeated T times, the same
        bits as T*B convs (a frame's conv does not depend on its batch; ``tests/layers/test_sps_fast.py``).
        """
        conv, bn = self.conv
        if fuse_bn_lif(x, bn, self.lif, self.conv, conv):  # BN applied as the LIF reads
            return self.pool_spikes(bn_lif(self._conv(x), bn, self.lif, channel_dim=2))
        return self.pool_spikes(self.lif(self._conv_bn(x)))

    def pool_spikes(self, s: torch.Tensor) -> torch.Tensor:
        """``self.pool`` of each frame of ``[T, B, C, H, W]`` through ``ops.spike_pool``: the fused kernel
        for fp32 CPU maps (1 byte per output kept for backward), ``F.max_pool2d`` elsewhere; the same bits."""
        if isinstance(self.pool, nn.Identity):
            return s
        if watched(self.pool, self.pool[0]):  # a hook expects the module to run: it does, same bits
            return self.pool(s)
        pool = self.pool[0]
        y = spike_pool(s.flatten(0, 1), pool.kernel_size, pool.stride, pool.padding)  # (T*B, C, H', W')
        return y.unflatten(0, s.shape[:2])                                              # (T, B, C, H', W')

    def spike_conv(self, x: torch.Tensor) -> bool:
        """Whether the conv of ``x`` runs as spike_conv2d: spike inputs, fp32 CPU training with gradients."""
        w = self.conv[0].weight
        return (self.spike_input and self.training and torch.is_grad_enabled() and x.device.type == "cpu"
                and x.dtype == torch.float32 and w.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"))

    def frames_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The conv (no BN) on frames ``[T*B, C_in, H, W]``: spike_conv2d where ``spike_conv``, else Conv2d."""
        conv = self.conv[0]
        if self.spike_conv(x):
            return spike_conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
        return conv(x)

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        """The conv alone, ``[T, B, C_out, H, W]``; for direct encoding (time stride 0) it runs once on the B
        images and its output is repeated T times (``forward`` says why that is exact)."""
        t, conv = x.shape[0], self.conv[0]
        if t == 1 or x.stride(0) != 0:
            return self.frames_conv(x.flatten(0, 1)).unflatten(0, (t, x.shape[1]))
        y = conv(x[0])                                           # (B, C, H, W): one conv per image
        return y.unsqueeze(0).expand(t, *y.shape)

    def _conv_bn(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[0]
        if self.spike_conv(x):
            return self.conv[1](self.frames_conv(x.flatten(0, 1))).unflatten(0, (t, x.shape[1]))
        if t == 1 or x.stride(0) != 0:
            return self.conv(x)
        y = self._conv(x).flatten(0, 1)                          # (T*B, C, H, W): the T copies BN normalises
        return self.conv[1](y).unflatten(0, (t, x.shape[1]))     # (T, B, C, H, W)


def check_images(x: torch.Tensor, stem: nn.Module) -> None:
    """Images ``[T, B, C_in, H, W]`` of the stem's size; in training, BatchNorm's last stage sees T*B*N values."""
    expected = (stem.in_channels, *stem.img_size)
    if isinstance(x, torch.Tensor) and (x.dim() != 5 or tuple(x.shape[2:]) != expected):
        raise ValueError(f"{type(stem).__name__} expects images [T, B, {', '.join(map(str, expected))}] "
                         f"(in_channels, H, W), got shape {tuple(x.shape)}")
    batch = x.shape[0] * x.shape[1] if isinstance(x, torch.Tensor) else 0
    check_input(x, stem, "T B C_in H W", "images", bn_values=batch * stem.num_tokens)


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
        check_int(in_channels, "in_channels")
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
            ConvBNLIF(widths[i], widths[i + 1], i in pool_stages, neuron, spike_input=i > 0) for i in range(4)
        ))
        self.rpe = ConvBNLIF(dim, dim, False, neuron, spike_input=True)
        self.grid = sps_grid(self.img_size, len(pool_stages))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C_in, H, W]`` -> ``[T, B, N, C]``."""
        check_images(x, self)
        f = self.stages(x)                     # (T, B, C, H', W')
        y = residual(f, self.rpe)              # f + rpe(f)
        return y.flatten(3).transpose(2, 3).contiguous()  # (T, B, N, C)

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, dim={self.dim}, img_size={self.img_size}, pool_stages={self.pool_stages}"


class SCS(nn.Module):
    r"""Spiking convolutional stem (Spikformer V2): images ``[T, B, C_in, H, W]`` -> tokens ``[T, B, N, C]``.

    SPS's four Conv3x3-BN-LIF stages (``C/8 -> C/4 -> C/2 -> C``, max-pools after ``pool_stages``)
    with ``extra_convs[i]`` supplementary Conv3x3-BN-LIF layers after stage ``i``, each a residual
    spike sum, then SPS's relative position branch:

    .. math::
        F_i = \mathrm{pool}(\mathrm{CBL}(F_{i-1})),\quad F_i \leftarrow F_i + \mathrm{CBL}(F_i)\ (\times e_i),
        \quad Y = F_3 + \mathrm{CBL}(F_3)

    The V2 authors never published the layer list ("supplementary convolutional layers"), so the
    choices here are ours, each for a stated reason:

    - SPS's pyramid is kept (same widths, same pools): a V1 stem is an SCS with ``extra_convs=(0,0,0,0)``,
      and the token grid of a preset does not change when the stem does.
    - Supplementary convs sit after the stage's pool, at the lower resolution: the same capacity at a
      quarter of the operations.
    - Each supplementary conv is a residual branch (``F + LIF(BN(Conv(F)))``, SEW "ADD", as SPS's own
      position branch), so a 10-conv-deep stem still passes spikes forward at T=1 instead of dying out.
      Outputs are small spike counts (0, 1, 2, ...), as SPS's already are.
    - How many: the reported sizes (29.11M for V2-8-384, 51.55M for V2-8-512) leave ~98.4 C^2
      parameters for the stem in both cases, i.e. a stem that scales with C^2. SPS has 14.9 C^2; one
      supplementary conv per stage plus 8 more at full width (``extra_convs=(1, 1, 1, 9)``) adds
      84.0 C^2, giving 98.9 C^2: the presets land at 29.18M and 51.68M (both +0.26%). The 0.5 C^2
      excess is the narrow convs' share (9 C^2 (1/64 + 1/16 + 1/4) = 2.95 C^2); without them the stem
      is 1.2% short, and no whole number of full-width convs lands closer. The true V2 stem may differ
      (kernel sizes, widths, BN counted or not): only the totals are published, and those unconfirmed.

    Masking (for masked-image pretraining, SparK-style): ``forward(x, keep)`` zeroes the masked
    cells of the token grid at the input and again after every conv layer (and pool), at that
    layer's resolution. BN turns a zero input into its shift and a 3x3 conv leaks visible values
    one pixel into masked cells, so re-masking each output is what keeps masked positions exactly
    zero all the way to the tokens (and masked cells never feed a visible one through a pool).
    In training mode BN's statistics count only visible cells (SparK's sparse BN): with 75% of every
    map masked, plain BN would learn its scale for a batch that is mostly zeros.

    Args:
        in_channels: image channels.
        dim: token channels C (a multiple of 8).
        img_size: ``H`` (square) or ``(H, W)``.
        pool_stages: stages (0..3) followed by MaxPool(3, 2, 1), as SPS.
        extra_convs: supplementary residual convs after each of the 4 stages (ints >= 0).
        neuron: LIF settings.

    Example:
        >>> scs = SCS(in_channels=1, dim=64, img_size=28, pool_stages=(0, 1), extra_convs=(1, 1, 1, 2))
        >>> scs(torch.rand(1, 2, 1, 28, 28)).shape       # [T, B, 7*7, 64]
    """

    def __init__(self, in_channels: int, dim: int, img_size: int | tuple[int, int],
                 pool_stages: tuple[int, ...] = (0, 1, 2, 3), extra_convs: tuple[int, ...] = (1, 1, 1, 9),
                 neuron: NeuronSpec | None = None):
        super().__init__()
        extra_convs = tuple(extra_convs)
        if len(extra_convs) != 4 or not all(isinstance(e, int) and e >= 0 for e in extra_convs):
            raise ValueError(f"extra_convs must be 4 ints >= 0 (one per stage), got {extra_convs!r}")
        # SPS checks dim / in_channels / pool_stages / img_size; build its stages and reuse them.
        sps = SPS(in_channels, dim, img_size, pool_stages, neuron)
        neuron = neuron or NeuronSpec()
        self.in_channels, self.dim, self.pool_stages, self.extra_convs = in_channels, dim, sps.pool_stages, extra_convs
        self.img_size, self.grid = sps.img_size, sps.grid
        self.stages = sps.stages
        widths = [dim // 8, dim // 4, dim // 2, dim]
        self.extras = nn.ModuleList(
            nn.ModuleList(ConvBNLIF(widths[i], widths[i], False, neuron, spike_input=True)
                          for _ in range(extra_convs[i]))
            for i in range(4)
        )
        self.rpe = sps.rpe

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``[T, B, C_in, H, W]`` (and an optional keep mask ``[B, H', W']``, True = visible) -> ``[T, B, N, C]``."""
        check_images(x, self)
        mask = _Remask(keep, x.shape[1], self.grid)
        x = mask(x)
        for stage, extras in zip(self.stages, self.extras):
            # mask before the pool too: a 3x3 pool window reaches into masked neighbours
            x = mask(stage.pool_spikes(mask(stage.lif(_conv_bn(stage, x, mask)))))
            for conv in extras:
                x = x + mask(conv.lif(_conv_bn(conv, x, mask)))
        y = x + mask(self.rpe.lif(_conv_bn(self.rpe, x, mask)))
        return y.flatten(3).transpose(2, 3).contiguous()  # (T, B, N, C)

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, dim={self.dim}, img_size={self.img_size}, "
                f"pool_stages={self.pool_stages}, extra_convs={self.extra_convs}")


def _conv_bn(layer: ConvBNLIF, x: torch.Tensor, mask: "_Remask") -> torch.Tensor:
    """``layer``'s conv and BN on ``[T, B, C, h, w]``; under a mask, BN's batch statistics count only
    the visible cells (SparK's sparse BN: ``masked_batch_norm`` says why)."""
    bn = layer.conv[1]
    if not layer.spike_conv(x) and (mask.keep is None or not bn.training):
        return layer.conv(x)
    t, b = x.shape[:2]
    y = layer.frames_conv(x.flatten(0, 1))                                      # (T*B, C, h, w)
    if mask.keep is None or not bn.training:
        return bn(y).unflatten(0, (t, b))
    visible = mask.at(y.shape[-2:], y.dtype).expand(t, -1, -1, -1, -1).flatten(0, 1)
    momentum = bn.momentum or 0.0
    if bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative average, as nn.BatchNorm2d
            momentum = 1.0 / float(bn.num_batches_tracked)
    y = masked_batch_norm(y, visible, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, momentum, bn.eps)
    return y.unflatten(0, (t, b))


class _Remask:
    """Multiply ``[T, B, C, h, w]`` maps by a token-grid keep mask resized (nearest) to ``(h, w)``; no-op without a mask."""

    def __init__(self, keep: torch.Tensor | None, batch: int, grid: tuple[int, int]):
        if keep is not None and (keep.dim() != 3 or tuple(keep.shape) != (batch, *grid)):
            raise ValueError(f"keep must be a [B, H', W'] = [{batch}, {grid[0]}, {grid[1]}] mask, got shape {tuple(keep.shape)}")
        self.keep, self.cache = keep, {}

    def at(self, size, dtype) -> torch.Tensor:
        """The keep mask at ``size`` ``(h, w)``: ``[B, 1, h, w]`` of 0/1."""
        size = tuple(size)
        if size not in self.cache:  # nearest: grid cell (i, j) covers the block of pixels it came from
            self.cache[size] = F.interpolate(self.keep[:, None].to(dtype), size=size, mode="nearest")
        return self.cache[size]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep is None:
            return x
        return x * self.at(x.shape[-2:], x.dtype)
