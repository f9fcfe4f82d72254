"""Masked-image pretraining wrapper (Spikformer V2): a spiking encoder on visible tokens, a non-spiking decoder.

Example:
    >>> mae = SpikformerMAE(spikformer("spikformer-v2-mini-fmnist"))
    >>> keep = torch.rand(8, 49).argsort(1) < 12               # [B, N] True = visible, 12 per image
    >>> pred = mae(torch.rand(8, 1, 28, 28), keep)              # [B, 49, 4*4*1] pixels of every patch
"""

from __future__ import annotations

import torch
from torch import nn

from spikeattn._validate import check_ints
from spikeattn.layers import SCS
from spikeattn.layers.attention import token_sums_scaled
from spikeattn.models.spikformer import Spikformer, _init_weights

__all__ = ["SpikformerMAE", "patchify", "unpatchify"]


def patchify(imgs: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, N, ph*pw*C]``, patches in row-major token order (as the stem's tokens)."""
    b, c, h, w = imgs.shape
    ph, pw = patch
    x = imgs.reshape(b, c, h // ph, ph, w // pw, pw)          # (B, C, H', ph, W', pw)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // ph) * (w // pw), ph * pw * c)


def unpatchify(patches: torch.Tensor, patch: tuple[int, int], grid: tuple[int, int], channels: int) -> torch.Tensor:
    """Inverse of ``patchify``: ``[B, N, ph*pw*C]`` -> ``[B, C, H, W]``."""
    (ph, pw), (gh, gw) = patch, grid
    x = patches.reshape(patches.shape[0], gh, gw, ph, pw, channels)  # (B, H', W', ph, pw, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(patches.shape[0], channels, gh * ph, gw * pw)


class SpikformerMAE(nn.Module):
    r"""MAE around a Spikformer with an SCS stem: predict the pixels of every patch from the visible ones.

    .. math::
        Z = \mathrm{Blocks}(\mathrm{gather}_{vis}(\mathrm{SCS}(I \odot M, M))),\quad
        \hat P = \mathrm{Dec}(\mathrm{scatter}(W_e \,\mathrm{mean}_t Z,\ [\mathrm{mask}]) + E_{pos})

    The stem sees the whole image with masked patches zeroed (and kept at zero, see ``SCS``); the
    encoder blocks then run on the visible tokens only (MAE), which SSA allows for any token count;
    meanwhile their attention sums are scaled by N / N_visible (``token_sums_scaled``: for this call
    only, nothing is written on the modules, so one MAE may serve several threads).
    The decoder is a small conventional transformer (LayerNorm, GELU, softmax attention, real values),
    as in V2: it is thrown away after pretraining, so it need not be spiking.

    Args:
        encoder: the Spikformer whose ``embed`` (an ``SCS``) and ``blocks`` are pretrained; its head is unused.
        decoder_dim, decoder_depth, decoder_heads: the decoder's width, layers and attention heads.

    The patch size is the image size over the token grid (28 / 7 = 4); it must divide evenly.
    """

    def __init__(self, encoder: Spikformer, decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4):
        super().__init__()
        if not isinstance(encoder, Spikformer) or not isinstance(encoder.embed, SCS):
            raise TypeError(f"encoder must be a Spikformer with an SCS stem (stem='scs'), got "
                            f"{type(encoder).__name__} with {type(getattr(encoder, 'embed', None)).__name__}")
        check_ints(decoder_dim=decoder_dim, decoder_depth=decoder_depth, decoder_heads=decoder_heads)
        (h, w), (gh, gw) = encoder.embed.img_size, encoder.embed.grid
        if h % gh or w % gw:
            raise ValueError(f"img_size {(h, w)} must be a multiple of the token grid {(gh, gw)} to cut patches")
        self.encoder = encoder
        self.grid, self.patch, self.channels = (gh, gw), (h // gh, w // gw), encoder.config.in_channels
        self.decoder_config = dict(decoder_dim=decoder_dim, decoder_depth=decoder_depth, decoder_heads=decoder_heads)
        n, c = gh * gw, encoder.config.dim
        self.decoder_embed = nn.Linear(c, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n, decoder_dim))
        self.decoder = nn.ModuleList(
            nn.TransformerEncoderLayer(decoder_dim, decoder_heads, 4 * decoder_dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch[0] * self.patch[1] * self.channels)
        for m in (self.decoder_embed, self.decoder, self.decoder_pred):
            m.apply(_init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` (or ``[T, B, C, H, W]``) and ``keep`` ``[B, N]`` (bool, True = visible,
        the same count in every row) -> predicted patches ``[B, N, ph*pw*C]``."""
        x_seq = self.encoder._to_sequence(x)
        t, b = x_seq.shape[:2]
        n_vis = self._check_keep(keep, b)
        tokens = self.encoder.embed(x_seq, keep.view(b, *self.grid))               # (T, B, N, C)
        # visible token indices in grid order (a stable sort puts the True entries first)
        vis_idx = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :n_vis]  # (B, Nv)
        c = tokens.shape[-1]
        z = tokens.gather(2, vis_idx[None, :, :, None].expand(t, b, n_vis, c))      # (T, B, Nv, C)
        with token_sums_scaled(self.num_tokens / n_vis):
            for block in self.encoder.blocks:
                z = block(z)
        h = self.decoder_embed(z.mean(0))                                            # (B, Nv, D) firing rates in
        d = h.shape[-1]
        full = self.mask_token.expand(b, self.num_tokens, d).to(h.dtype)
        full = full.scatter(1, vis_idx[..., None].expand(b, n_vis, d), h) + self.pos_embed  # (B, N, D)
        for layer in self.decoder:
            full = layer(full)
        return self.decoder_pred(self.decoder_norm(full))                          # (B, N, ph*pw*C)

    def _check_keep(self, keep: torch.Tensor, batch: int) -> int:
        if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool:
            raise TypeError(f"keep must be a bool tensor [B, N], got {getattr(keep, 'dtype', type(keep).__name__)}")
        if tuple(keep.shape) != (batch, self.num_tokens):
            raise ValueError(f"keep must have shape [B, N] = [{batch}, {self.num_tokens}], got {tuple(keep.shape)}")
        counts = keep.sum(1)
        if batch and not (counts == counts[0]).all() or (batch and counts[0] == 0):
            raise ValueError(f"keep must mark the same number (>= 1) of visible tokens in every row, got {counts.tolist()}")
        return int(counts[0]) if batch else 0
