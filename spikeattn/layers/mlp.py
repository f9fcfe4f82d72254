"""Spiking MLP and the Spikformer encoder block."""

from __future__ import annotations

import torch
from torch import nn

from spikeattn._validate import check_ints
from spikeattn.layers.attention import SpikeDrivenSelfAttention, SpikingSelfAttention
from spikeattn.layers.seq import LinearBN, NeuronSpec, check_tokens, residual

__all__ = ["SpikingMLP", "SpikformerBlock", "ATTENTION"]

ATTENTION = {"ssa": SpikingSelfAttention, "sdsa": SpikeDrivenSelfAttention}


class SpikingMLP(nn.Module):
    r"""Two Linear-BN-LIF layers: ``[T, B, N, C] -> [T, B, N, C]`` spikes, hidden width ``hidden``.

    .. math::
        Y = \mathrm{LIF}(\mathrm{BN}(\mathrm{LIF}(\mathrm{BN}(X W_1)) W_2))
    """

    def __init__(self, dim: int, hidden: int | None = None, neuron: NeuronSpec | None = None):
        super().__init__()
        hidden = 4 * dim if hidden is None else hidden
        check_ints(dim=dim, hidden=hidden)
        neuron = neuron or NeuronSpec()
        self.dim, self.hidden = dim, hidden
        self.fc1, self.lif1 = LinearBN(dim, hidden), neuron.make()
        self.fc2, self.lif2 = LinearBN(hidden, dim), neuron.make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(x, self.dim, module=self)
        return self.fc2.fire(self.fc1.fire(x, self.lif1), self.lif2, is_spikes=True)


class SpikformerBlock(nn.Module):
    r"""Encoder block: ``x = x + Attn(x); x = x + MLP(x)`` on ``[T, B, N, C]``.

    The residuals add spikes, so the output holds small integers (0, 1, 2, ...), not only 0/1.

    Args:
        dim, heads: channels and attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        attention: ``"ssa"`` (Spikformer) or ``"sdsa"`` (Spike-driven Transformer).
        scale: SSA scale (ignored by SDSA).
        neuron: LIF settings for every neuron of the block.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, attention: str = "ssa",
                 scale: float = 0.125, neuron: NeuronSpec | None = None):
        super().__init__()
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {tuple(ATTENTION)}, got {attention!r}")
        extra = {"scale": scale} if attention == "ssa" else {}
        self.attn = ATTENTION[attention](dim, heads, neuron=neuron, **extra)
        self.mlp = SpikingMLP(dim, int(dim * mlp_ratio), neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(x, self.mlp.dim, module=self)
        x = residual(x, self.attn)  # x + attn(x)
        return residual(x, self.mlp)
