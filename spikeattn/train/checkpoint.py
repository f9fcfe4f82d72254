"""Atomic checkpoints and the RNG state that makes a resumed run bit-identical.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one (``os.replace`` is atomic on POSIX), so a run killed while saving leaves the previous
checkpoint intact rather than a half-written one.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CheckpointError", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "epoch", "batch_in_epoch", "config")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or lacks what a resume needs."""


def save_checkpoint(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file in the same dir + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # only when saving failed before the rename
            tmp.unlink()
    # Make the rename itself durable (the directory entry), not just the file contents.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by ``save_checkpoint``; a corrupt or truncated file raises ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "delete it to start over, or point out_dir at another run"
        ) from e
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
