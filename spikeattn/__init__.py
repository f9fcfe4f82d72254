"""spikeattn: spiking transformers on fused multi-step LIF kernels, with op counting and Lava export."""

from spikeattn import functional, neuron, opcount, ops, surrogate
from spikeattn.neuron.base import reset
from spikeattn.ops._checks import debug

__version__ = "0.1.0"
__all__ = ["functional", "neuron", "opcount", "ops", "surrogate", "reset", "debug"]
