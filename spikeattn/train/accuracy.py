"""Top-1 accuracy of a classifier over a dataset: the one test pass of the examples and the CLI."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["accuracy"]


@torch.no_grad()
def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 500) -> float:
    """Fraction of ``dataset``'s ``(x, y)`` items whose ``model(x).argmax(-1) == y``, in eval mode."""
    if len(dataset) == 0:
        raise ValueError("accuracy of an empty dataset is undefined")
    model.eval()
    correct = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        correct += (model(x).argmax(-1) == y).sum().item()
    return correct / len(dataset)
