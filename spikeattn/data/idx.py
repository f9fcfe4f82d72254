"""The idx file format of MNIST and Fashion-MNIST (plain or gzip), and the two datasets.

An idx file is a big-endian header ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` uint32 sizes,
then the values. Both datasets store uint8 images ``[N, 28, 28]`` and uint8 labels ``[N]``.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

__all__ = ["read_idx", "load_fashion_mnist", "load_mnist", "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES"]

# Where Debian's dataset-fashion-mnist package installs the files (`make data`).
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# idx dtype codes; only uint8 is used by (Fashion-)MNIST but the reader accepts all of them.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:  # truncated or not gzip at all
        raise ValueError(f"{path}: cannot read idx file ({type(e).__name__}: {e})") from e


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read one idx or idx.gz file into a tensor of its stored dtype.

    Args:
        path: the file; names ending in ``.gz`` are decompressed.

    Returns:
        A tensor with the shape written in the header, e.g. uint8 ``[N, 28, 28]`` for images.

    Raises:
        FileNotFoundError: no such file.
        ValueError: bad magic number, unknown dtype code, or a size that does not match the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file not found: {path}")
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an idx file (magic bytes {data[:4].hex() or 'empty'}, expected 0000xxyy)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown idx dtype code 0x{code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: idx header truncated (ndim={ndim}, {len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    got = len(data) - 4 - 4 * ndim
    if got != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds {got}")
    array = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    # Native byte order and a writable copy: torch cannot wrap big-endian or read-only buffers.
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def _find_file(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _load_pair(root, split: str, default: Path, what: str, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(default if root is None else root)
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    found = [_find_file(root, s) for s in stems]
    if None in found:
        missing = [s + "[.gz]" for s, f in zip(stems, found) if f is None]
        raise FileNotFoundError(
            f"{what} {split} split not found: looked in {root} for {', '.join(missing)}. {how}"
        )
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.dim() != 3 or images.dtype != torch.uint8:
        raise ValueError(f"{found[0]}: expected uint8 images [N, H, W], got {images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{found[1]}: expected {images.shape[0]} labels, got shape {tuple(labels.shape)}")
    return images, labels


def load_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as ``(images uint8 [N, 28, 28], labels uint8 [N])``; N = 60000 (train) or 10000 (test).

    Args:
        root: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``;
            default ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
        split: ``"train"`` or ``"test"``.
    """
    how = ("Install them with `make data` (or `apt-get install dataset-fashion-mnist`, which puts them in "
           f"{FASHION_MNIST_DIR}), or pass root= pointing at a folder with the idx files.")
    return _load_pair(root, split, FASHION_MNIST_DIR, "Fashion-MNIST", how)


def load_mnist(root: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST (same file names and format as Fashion-MNIST) from ``root``."""
    how = "Download the four MNIST idx files into that folder, or pass root= pointing at them."
    return _load_pair(root, split, Path(root), "MNIST", how)
