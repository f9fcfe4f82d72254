"""Atomic checkpoints and the RNG state that makes a resumed run bit-identical.

A checkpoint is written atomically in the checksummed, versioned format of ``container.py``: a run
killed while saving leaves the previous checkpoint intact and no temporary file behind, and a
corrupted file is refused on load rather than resumed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from spikeattn.train.container import CheckpointError, read_file, write_file

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CheckpointError", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "epoch", "batch_in_epoch", "config")


def save_checkpoint(obj: dict, path: str | os.PathLike) -> Path:
    """Save ``obj`` to ``path`` atomically in the checksummed format (``spikeattn.train.container``)."""
    return write_file(obj, path, "checkpoint")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by ``save_checkpoint``; a corrupt, truncated or foreign file raises ``CheckpointError``."""
    ckpt = read_file(path, "checkpoint", map_location=map_location)
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a spikeattn training checkpoint (missing {missing})")
    return ckpt


def rng_state() -> dict:
    """Every RNG a training step may draw from: torch (CPU and CUDA), numpy's global, Python's ``random``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        # numpy's state as tensors and numbers so that torch.load(weights_only=True) accepts it
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
