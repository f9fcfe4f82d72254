"""Pure torch neuron maths (no modules, no kernels)."""

from spikeattn.functional.neuron import LIFParameters, LIFState, charge, fire, lif_step, reset

__all__ = ["LIFParameters", "LIFState", "charge", "fire", "reset", "lif_step"]
