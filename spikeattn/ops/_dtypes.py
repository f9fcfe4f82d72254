"""The one rule for the dtype that neuron state and accumulations are kept in."""

from __future__ import annotations

import torch


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for every input dtype but fp64 (kept for gradcheck).

    Membranes, WKV sums and spike counts live here: bf16/fp16 hold integers exactly only up to
    256/2048 and would drift over a sequence.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32
