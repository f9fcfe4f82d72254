"""Spikformer: SPS stem, spiking-attention encoder blocks, a linear head; config + named presets.

Example:
    >>> model = spikformer("spikformer-mini-fmnist")
    >>> logits = model(torch.rand(8, 1, 28, 28))            # [B, num_classes]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from spikeattn import surrogate as sg
from spikeattn._validate import check_ints
from spikeattn.layers import SCS, SPS, NeuronSpec, SpikformerBlock
from spikeattn.layers.embed import check_images
from spikeattn.layers.mlp import ATTENTION

__all__ = ["SpikformerConfig", "Spikformer", "spikformer", "PRESETS"]

SURROGATES = {"atan": sg.ATan, "sigmoid": sg.Sigmoid, "fast_sigmoid": sg.FastSigmoid,
              "triangle": sg.Triangle, "rectangle": sg.Rectangle}


@dataclass
class SpikformerConfig:
    depth: int = 4                       # encoder blocks
    dim: int = 384                       # token channels C (multiple of 8 and of heads)
    heads: int = 12
    mlp_ratio: float = 4.0               # MLP hidden = mlp_ratio * dim
    T: int = 4                           # time steps an image is repeated for (direct encoding)
    img_size: int | tuple = 32           # H (square) or (H, W); other input sizes are refused
    pool_stages: tuple = (2, 3)          # stem stages followed by a max-pool (each halves H and W)
    stem: str = "sps"                    # "sps" (Spikformer V1) or "scs" (V2's spiking convolutional stem)
    stem_extra_convs: tuple = (1, 1, 1, 9)  # SCS only: supplementary residual convs after each stage
    in_channels: int = 3
    num_classes: int = 10
    attention: str = "ssa"               # "ssa" (Spikformer) or "sdsa" (Spike-driven Transformer)
    scale: float = 0.125                 # SSA scale on the integer attention counts
    # neurons: LIF with hard reset to 0 everywhere (Spikformer's settings)
    tau: float = 2.0
    detach_reset: bool = True
    surrogate: str = "sigmoid"           # one of SURROGATES
    surrogate_alpha: float = 4.0         # the surrogate's one parameter
    backend: str = "auto"                # spikeattn.ops.lif backend

    def __post_init__(self):
        self.pool_stages = tuple(self.pool_stages)   # JSON round trips give lists
        self.stem_extra_convs = tuple(self.stem_extra_convs)
        if not isinstance(self.img_size, int):
            self.img_size = tuple(self.img_size)
        check_ints(**{name: getattr(self, name) for name in ("depth", "dim", "heads", "T", "in_channels", "num_classes")})
        if self.dim % self.heads or self.dim % 8:
            raise ValueError(f"dim must be divisible by heads ({self.heads}) and by 8, got {self.dim}")
        if self.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {tuple(ATTENTION)}, got {self.attention!r}")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {tuple(STEMS)}, got {self.stem!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {tuple(SURROGATES)}, got {self.surrogate!r}")

    def neuron(self) -> NeuronSpec:
        return NeuronSpec(tau=self.tau, v_reset=0.0, detach_reset=self.detach_reset,
                          surrogate=SURROGATES[self.surrogate](self.surrogate_alpha), backend=self.backend)

    def to_dict(self) -> dict:
        return asdict(self)


# Published configurations (REFERENCE §2). Head counts follow the V1 code's configs: d = 32 for
# CIFAR (12 heads, scale 0.125), d = 64 for ImageNet, and 16 heads with scale 0.25 for DVS.
PRESETS: dict[str, dict] = {
    "spikformer-4-384": dict(depth=4, dim=384, heads=12, T=4, img_size=32, pool_stages=(2, 3),
                             in_channels=3, num_classes=10),
    "spikformer-8-768": dict(depth=8, dim=768, heads=12, T=4, img_size=224, pool_stages=(0, 1, 2, 3),
                             in_channels=3, num_classes=1000),
    "spikformer-2-256": dict(depth=2, dim=256, heads=16, T=16, img_size=128, pool_stages=(0, 1, 2, 3),
                             in_channels=2, num_classes=10, scale=0.25),
    # Our Fashion-MNIST demo model, chosen on a 2-core CPU (benchmarks/results/spikformer_fmnist_cpu.json):
    # one time step halves the cost of a step against T=2, so ~2 epochs fit in 10 minutes; pooling in the
    # first two SPS stages (28 -> 14 -> 7) keeps every later stage on 49 tokens; tau=1.2 instead of 2:
    # with one step a LIF neuron only sees x/tau, and at tau=2 so few neurons fire that learning crawls
    # (400 steps: 61% test accuracy at tau=2, 80% at tau=1.2).
    "spikformer-mini-fmnist": dict(depth=2, dim=64, heads=4, T=1, img_size=28, pool_stages=(0, 1),
                                   in_channels=1, num_classes=10, tau=1.2),
    # Spikformer V2 (REFERENCE §2): the SCS stem (its layer choices and the parameter arithmetic are in
    # SCS's docstring: 29.18M / 51.68M against the reported 29.11M / 51.55M); heads of d = 64 as V1 ImageNet.
    "spikformer-v2-8-384": dict(depth=8, dim=384, heads=6, T=4, img_size=224, pool_stages=(0, 1, 2, 3),
                                in_channels=3, num_classes=1000, stem="scs", stem_extra_convs=(1, 1, 1, 9)),
    "spikformer-v2-8-512": dict(depth=8, dim=512, heads=8, T=4, img_size=224, pool_stages=(0, 1, 2, 3),
                                in_channels=3, num_classes=1000, stem="scs", stem_extra_convs=(1, 1, 1, 9)),
    # V2 at demo size: spikformer-mini-fmnist's recipe with an SCS stem (examples/pretrain_spikformer_v2.py).
    "spikformer-v2-mini-fmnist": dict(depth=2, dim=64, heads=4, T=1, img_size=28, pool_stages=(0, 1),
                                      in_channels=1, num_classes=10, tau=1.2, stem="scs",
                                      stem_extra_convs=(1, 1, 1, 2)),
}


class Spikformer(nn.Module):
    r"""Spikformer classifier: images -> logits ``[B, num_classes]``.

    .. math::
        X_0 = \mathrm{SPS}(I),\quad X_{l} = \mathrm{Block}(X_{l-1}),\quad
        \mathrm{logits} = \tfrac{1}{T}\textstyle\sum_t W \,\mathrm{mean}_n X_L[t, :, n]

    Every forward starts from rest and leaves nothing on the modules (stateless neurons): each input is an
    independent sample, and one model may serve several threads at once.
    """

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.config = c = config
        neuron = c.neuron()
        self.embed = STEMS[c.stem](c, neuron)
        self.blocks = nn.ModuleList(
            SpikformerBlock(c.dim, c.heads, c.mlp_ratio, c.attention, c.scale, neuron=neuron) for _ in range(c.depth)
        )
        self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` (repeated T times) or time-major ``[T, B, C, H, W]`` -> ``[B, num_classes]``."""
        x_seq = self._to_sequence(x)
        tokens = self.embed(x_seq)                      # (T, B, N, C)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(tokens.mean(dim=2)).mean(0)   # mean over tokens, head, mean over T

    def _to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"input must be a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        size = self.embed.img_size
        if x.dim() not in (4, 5) or tuple(x.shape[-3:]) != (c.in_channels, *size):
            raise ValueError(
                f"this Spikformer takes images [B, {c.in_channels}, {size[0]}, {size[1]}] or "
                f"[T, B, {c.in_channels}, {size[0]}, {size[1]}] (in_channels={c.in_channels}, img_size={c.img_size}), "
                f"got shape {tuple(x.shape)}; build it with img_size=/in_channels= to change them"
            )
        x_seq = x.unsqueeze(0).expand(c.T, *x.shape) if x.dim() == 4 else x  # direct encoding: the same frame T times
        check_images(x_seq, self.embed)  # empty dims, dtype, BatchNorm batch
        return x_seq

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# The token stem by name: each builds [T, B, C_in, H, W] -> [T, B, N, C] from the config.
STEMS = {
    "sps": lambda c, neuron: SPS(c.in_channels, c.dim, c.img_size, c.pool_stages, neuron=neuron),
    "scs": lambda c, neuron: SCS(c.in_channels, c.dim, c.img_size, c.pool_stages, c.stem_extra_convs, neuron=neuron),
}


def _init_weights(m: nn.Module) -> None:
    # As the Spikformer code: truncated normal(0.02) for linear weights, zero biases.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def spikformer(name: str = "spikformer-4-384", **overrides) -> Spikformer:
    """Build a preset, with any ``SpikformerConfig`` field overridden (``num_classes=100``, ``T=8``, ...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown Spikformer preset {name!r}; choose from {sorted(PRESETS)}")
    known = {f.name for f in fields(SpikformerConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown SpikformerConfig field(s) {unknown}; fields are {sorted(known)}")
    config = replace(SpikformerConfig(**PRESETS[name]), **overrides)
    return Spikformer(config)
