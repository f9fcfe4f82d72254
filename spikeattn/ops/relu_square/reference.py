"""``relu(x)^2`` as plain torch ops: the spec and the oracle of the fused kernel."""

from __future__ import annotations

import torch


def naive_relu_square(x: torch.Tensor) -> torch.Tensor:
    """``square(relu(x))``, any shape, device and dtype; autograd gives its gradient."""
    return torch.square(torch.relu(x))
