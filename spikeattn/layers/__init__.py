"""Spiking transformer layers on time-major spike tokens ``[T, B, N, C]``."""

from spikeattn.layers.attention import SpikeDrivenSelfAttention, SpikingSelfAttention, spike_attention, ssa_order
from spikeattn.layers.embed import SCS, SPS
from spikeattn.layers.mlp import SpikformerBlock, SpikingMLP
from spikeattn.layers.rwkv import BlockState, SpikeGPTBlock, SpikingChannelMix, SpikingTimeMix, TimeMixState, token_shift
from spikeattn.layers.seq import LinearBN, NeuronSpec, PerFrame
from spikeattn.ops.wkv import wkv

__all__ = [
    "SpikingSelfAttention", "SpikeDrivenSelfAttention", "spike_attention", "ssa_order",
    "SPS", "SCS", "SpikingMLP", "SpikformerBlock", "NeuronSpec", "PerFrame", "LinearBN",
    "SpikingTimeMix", "SpikingChannelMix", "SpikeGPTBlock", "BlockState", "TimeMixState", "token_shift", "wkv",
]
