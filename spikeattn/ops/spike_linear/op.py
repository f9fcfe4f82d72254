"""The registered op ``spikeattn::spike_grad_weight``: schema and fake kernel (``cpu.py`` registers the CPU one).

Registered through torch.library so torch.compile traces it as one opaque node instead of
breaking its graph at a ctypes call.
"""

from __future__ import annotations

import torch

torch.library.define("spikeattn::spike_grad_weight", "(Tensor grad_y, Tensor x) -> Tensor")


@torch.library.register_fake("spikeattn::spike_grad_weight")
def _fake(grad_y, x):
    return grad_y.new_empty((grad_y.shape[1], x.shape[1]))
