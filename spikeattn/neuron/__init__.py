"""Neuron modules (LIF, IF, PLIF) and the functional multi-step LIF."""

from spikeattn.neuron.base import MemoryModule, reset
from spikeattn.neuron.lif import IF, LIF, PLIF, lif_multistep

__all__ = ["LIF", "IF", "PLIF", "lif_multistep", "MemoryModule", "reset"]
