"""Atomic save, clear errors for corrupt checkpoints, RNG capture/restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from spikeattn.train import CheckpointError, TrainConfig, load_checkpoint, save_checkpoint, train
from spikeattn.train.checkpoint import rng_state, set_rng_state
from spikeattn.train.container import read_file
from tests.train.helpers import blobs, direct_forward, tiny_model


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"a": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(read_file(path, "checkpoint")["a"], torch.ones(3))  # the old checkpoint survived
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]      # and no temp file is left


def test_rng_roundtrip():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def _run(tmp_path, **kw):
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-2, out_dir=str(tmp_path), progress=False, **kw)
    return train(tiny_model(), blobs(), cfg, forward=direct_forward)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_names_the_file(tmp_path, damage):
    _run(tmp_path)
    path = tmp_path / "ckpt.pt"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(path)):
        _run(tmp_path, resume=True)


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt.pt"):
        _run(tmp_path, resume=True)


def test_not_a_training_checkpoint(tmp_path):
    save_checkpoint({"model": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "x.pt")


def test_resume_with_changed_config(tmp_path):
    _run(tmp_path)
    with pytest.raises(ValueError, match="lr"):
        train(tiny_model(), blobs(), TrainConfig(steps=4, batch_size=8, lr=5e-2, out_dir=str(tmp_path),
                                                 progress=False, resume=True), forward=direct_forward)
