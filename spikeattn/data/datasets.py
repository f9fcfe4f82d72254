"""Map-style datasets over in-memory uint8 images: normalise to float once, index cheaply."""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

from spikeattn.data.idx import load_fashion_mnist

__all__ = ["ImageDataset", "fashion_mnist"]

# Mean and std of the Fashion-MNIST training images (pixels scaled to [0, 1]).
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530


class ImageDataset(Dataset):
    """``(image float32 [C, H, W], label int64)`` pairs from uint8 images.

    Args:
        images: uint8 ``[N, H, W]`` (grey, a channel axis is added) or ``[N, C, H, W]``.
        labels: integer ``[N]``.
        mean, std: per-dataset normalisation applied after scaling pixels to [0, 1].

    The whole set is converted once (60k Fashion-MNIST images are 188 MB as float32), so that
    ``__getitem__`` is a view and the training loop is not slowed by per-item conversion.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float = 0.0, std: float = 1.0):
        if images.dtype != torch.uint8 or images.dim() not in (3, 4):
            raise ValueError(f"images must be uint8 [N, H, W] or [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must have shape [{images.shape[0]}], got {tuple(labels.shape)}")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        x = images.unsqueeze(1) if images.dim() == 3 else images  # (N, C, H, W)
        self.images = (x.float() / 255.0 - mean) / std
        self.labels = labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None) -> ImageDataset:
    """Fashion-MNIST as a normalised ``ImageDataset`` (images ``[1, 28, 28]``); ``limit`` keeps the first N."""
    images, labels = load_fashion_mnist(root, split)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        images, labels = images[:limit], labels[:limit]
    return ImageDataset(images, labels, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
