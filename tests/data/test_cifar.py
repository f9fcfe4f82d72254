"""CIFAR-10 loader on pickles written here in the real "python version" layout."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from spikeattn.data import load_cifar10


def write_batch(path, n: int, seed: int):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(c) for c in rng.integers(0, 10, size=n)]
    with open(path, "wb") as f:  # the real files are protocol-2 pickles with bytes keys
        pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"a"] * n}, f, protocol=2)
    return data, labels


def make_root(tmp_path, n=3):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    train = [write_batch(root / f"data_batch_{i}", n, i) for i in range(1, 6)]
    test = write_batch(root / "test_batch", n, 99)
    return root, train, test


def test_train_and_test(tmp_path):
    root, train, test = make_root(tmp_path)
    x, y = load_cifar10(tmp_path, "train")  # the parent folder works too
    assert x.shape == (15, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert y.tolist() == sum((t[1] for t in train), [])
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32
    first = train[0][0][0]
    assert x[0, 1, 2, 3].item() == first[1024 + 2 * 32 + 3]
    xt, yt = load_cifar10(root, "test")
    assert xt.shape == (3, 3, 32, 32) and yt.tolist() == test[1]


def test_missing_files(tmp_path):
    root, _, _ = make_root(tmp_path)
    (root / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(root, "train")


def test_corrupt_pickle(tmp_path):
    root, _, _ = make_root(tmp_path)
    (root / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(root, "test")
