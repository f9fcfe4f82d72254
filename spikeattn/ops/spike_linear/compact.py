"""Integer-valued activations (spikes, spike sums) in 1 byte instead of 4, for what backward keeps."""

from __future__ import annotations

import torch

from spikeattn.ops.spike_linear import cpu


def compact_spikes(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` as uint8 when it holds only integers 0..255 (spikes, spike sums), else None.

    One elementwise pass; it lets backward keep 1 byte per value instead of 4. Skipped under
    torch.compile and other tracing (fake or functional tensors, which are Tensor subclasses): a
    data-dependent branch cannot be traced.
    """
    if torch.compiler.is_compiling() or type(x) is not torch.Tensor or not x.is_floating_point():
        return None
    if x.device.type == "cpu" and x.dtype == torch.float32 and cpu.is_available():
        return cpu.to_uint8_exact(x)  # the check and the copy in one pass
    small = x.to(torch.uint8)
    return small if torch.equal(small.to(x.dtype), x) else None
