"""Pure torch maths (no modules, no kernels): neurons, masked batch norm."""

from spikeattn.functional.neuron import LIFParameters, LIFState, charge, fire, lif_step, reset
from spikeattn.functional.norm import masked_batch_norm

__all__ = ["LIFParameters", "LIFState", "charge", "fire", "reset", "lif_step", "masked_batch_norm"]
