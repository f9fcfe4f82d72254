"""Multi-step LIF as a plain torch loop over time: the spec and the oracle for every fast path."""

from __future__ import annotations

import torch

from spikeattn.functional.neuron import LIFParameters, LIFState, lif_step


def naive_lif_multi_step(
    x_seq: torch.Tensor, v0: torch.Tensor, p: LIFParameters, batch_first: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``lif_step`` over ``x_seq`` ``[T, ...]`` (``[B, T, ...]`` if ``batch_first``) from membrane ``v0``.

    Returns spikes shaped as ``x_seq`` in ``x_seq.dtype`` and the final membrane in ``v0.dtype``;
    gradients come from autograd through the loop.
    """
    state = LIFState(v0)
    spikes = []
    for x in x_seq.unbind(1 if batch_first else 0):
        spike, state = lif_step(x, state, p)
        spikes.append(spike.to(x_seq.dtype))
    return torch.stack(spikes, 1 if batch_first else 0), state.v
