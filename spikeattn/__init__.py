"""spikeattn: spiking transformers on fused multi-step LIF kernels, with op counting and Lava export."""

from spikeattn import data, export, functional, layers, models, neuron, opcount, ops, recipes, surrogate, train
from spikeattn.neuron.base import reset
from spikeattn.ops._checks import debug

__version__ = "0.1.0"
__all__ = ["data", "export", "functional", "layers", "models", "neuron", "opcount", "ops", "recipes", "surrogate", "train", "reset", "debug"]
