"""Spiking transformer layers on time-major spike tokens ``[T, B, N, C]``."""

from spikeattn.layers.attention import SpikeDrivenSelfAttention, SpikingSelfAttention, spike_attention, ssa_order
from spikeattn.layers.embed import SPS
from spikeattn.layers.mlp import SpikformerBlock, SpikingMLP
from spikeattn.layers.seq import LinearBN, NeuronSpec, PerFrame

__all__ = [
    "SpikingSelfAttention", "SpikeDrivenSelfAttention", "spike_attention", "ssa_order",
    "SPS", "SpikingMLP", "SpikformerBlock", "NeuronSpec", "PerFrame", "LinearBN",
]
