"""CIFAR-10 in its "python version" on-disk format (``cifar-10-batches-py``).

Each batch file is a pickle of a dict with ``b"data"`` (uint8 ``[10000, 3072]``, rows are R, G, B
planes of 32x32) and ``b"labels"`` (a list of ints). Training: ``data_batch_1`` .. ``data_batch_5``;
test: ``test_batch``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_cifar10", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILES = ("test_batch",)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a CIFAR-10 pickle ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise ValueError(f"{path}: expected a dict with b'data' and b'labels'")
    data, labels = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: expected uint8 data [N, 3072] and N labels, got {data.dtype} {data.shape} "
                         f"and labels {labels.shape}")
    return data, labels


def load_cifar10(root: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as ``(images uint8 [N, 3, 32, 32], labels int64 [N])``.

    Args:
        root: the ``cifar-10-batches-py`` folder (or its parent).
        split: ``"train"`` (50000 images) or ``"test"`` (10000).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = _TRAIN_FILES if split == "train" else _TEST_FILES
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 {split} split not found: looked in {root} for {', '.join(missing)}. Download "
            "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass "
            "root= pointing at cifar-10-batches-py/."
        )
    parts = [_read_batch(root / n) for n in names]
    data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)  # (N, C, H, W)
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"CIFAR-10 labels must be in [0, 9], got range [{labels.min()}, {labels.max()}]")
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)
