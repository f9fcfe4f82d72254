"""idx reader on files written here in the real format, including broken ones; the real Fashion-MNIST."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from spikeattn.data import FASHION_MNIST_DIR, fashion_mnist, load_fashion_mnist, load_mnist, read_idx


def write_idx(path, array: np.ndarray, code: int = 0x08, gz: bool = True) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(payload)


def write_split(root, prefix: str, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return images, labels


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_roundtrip_uint8(tmp_path, gz):
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, a, gz=gz)
    t = read_idx(path)
    assert t.dtype == torch.uint8 and t.shape == (2, 3, 5)
    assert torch.equal(t, torch.from_numpy(a))


def test_big_endian_int32(tmp_path):
    a = np.array([[1, -2, 70000]], dtype=np.int32)
    write_idx(tmp_path / "b.gz", a, code=0x0C)
    assert read_idx(tmp_path / "b.gz").tolist() == [[1, -2, 70000]]


def test_load_split(tmp_path):
    images, labels = write_split(tmp_path, "t10k", 7)
    x, y = load_fashion_mnist(tmp_path, "test")
    assert x.shape == (7, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.uint8
    assert torch.equal(x, torch.from_numpy(images)) and torch.equal(y, torch.from_numpy(labels))
    x2, _ = load_mnist(tmp_path, "test")
    assert torch.equal(x, x2)


def test_bad_magic(tmp_path):
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x08\x01" + b"\x00" * 8))
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad.gz")


def test_truncated_data(tmp_path):
    write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8), gz=False)
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match=r"header says shape \(4, 28, 28\)"):
        read_idx(tmp_path / "x")


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((64, 28, 28), np.uint8))
    raw = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="x.gz"):
        read_idx(tmp_path / "x.gz")


def test_label_count_mismatch(tmp_path):
    write_split(tmp_path, "train", 5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="expected 5 labels"):
        load_fashion_mnist(tmp_path, "train")


def test_missing_dir_says_where_and_how(tmp_path):
    where = tmp_path / "nothing-here"
    with pytest.raises(FileNotFoundError) as e:
        load_fashion_mnist(where, "train")
    msg = str(e.value)
    assert str(where) in msg and "train-images-idx3-ubyte" in msg
    assert "make data" in msg and "dataset-fashion-mnist" in msg and "root=" in msg


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist(tmp_path, "valid")


def test_dataset_normalises(tmp_path):
    write_split(tmp_path, "train", 6)
    ds = fashion_mnist("train", root=tmp_path, limit=4)
    x, y = ds[1]
    assert len(ds) == 4 and x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw, _ = load_fashion_mnist(tmp_path, "train")
    assert torch.allclose(x * 0.3530 + 0.2860, raw[1].float().unsqueeze(0) / 255, atol=1e-6)


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(), reason="run `make data`")
def test_real_fashion_mnist():
    x, y = load_fashion_mnist(split="test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y.long()).tolist() == [1000] * 10  # the test set is balanced
