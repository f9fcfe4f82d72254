"""Event-camera streams (DVS128 Gesture, CIFAR10-DVS, N-MNIST) as npz files, binned into frames.

One sample is an ``.npz`` with four equal-length 1-D arrays ``x``, ``y``, ``t``, ``p`` (column,
row, timestamp, polarity), the layout spikingjelly writes in ``events_np/<class>/<sample>.npz``.
Polarity is 0/1 (or -1/+1, mapped to 0/1); channel 0 of a frame counts OFF events, channel 1 ON.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeattn._validate import check_int

__all__ = ["load_events", "events_to_frames", "EventFrames", "event_folder"]

_KEYS = ("x", "y", "t", "p")


def load_events(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one npz sample; returns ``{"x", "y", "t", "p"}`` as int64 arrays of one length (``t`` may be float)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"event file not found: {path}")
    try:
        with np.load(path) as f:
            missing = [k for k in _KEYS if k not in f.files]
            if missing:
                raise ValueError(f"{path}: event npz must hold arrays {_KEYS}, missing {missing} (has {f.files})")
            ev = {k: np.asarray(f[k]).reshape(-1) for k in _KEYS}
    except (OSError, EOFError) as e:  # np.load of a truncated / non-zip file
        raise ValueError(f"{path}: cannot read event npz ({type(e).__name__}: {e})") from e
    n = {k: v.shape[0] for k, v in ev.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"{path}: x, y, t, p must have one length, got {n}")
    for k in ("x", "y", "p"):
        ev[k] = ev[k].astype(np.int64)
    return ev


def events_to_frames(events: dict[str, np.ndarray], T: int, height: int, width: int) -> torch.Tensor:
    r"""Count events into ``T`` frames of equal duration: ``float32 [T, 2, height, width]``.

    .. math::
        \text{bin}(t) = \lfloor (t - t_0)\,T / (t_1 - t_0 + 1) \rfloor \quad\text{(integer } t\text{)}

    with :math:`t_0, t_1` the first and last timestamps, so every window spans the same time
    (floating timestamps use :math:`\lfloor (t - t_0) T / (t_1 - t_0) \rfloor`, the last event in bin T-1).

    Args:
        events: ``{"x", "y", "t", "p"}`` as from ``load_events``.
        T: number of frames (>= 1).
        height, width: sensor size; an event outside it raises ValueError.
    """
    check_int(T, "T")
    x, y, t, p = (np.asarray(events[k]) for k in _KEYS)
    frames = torch.zeros(T, 2, height, width, dtype=torch.float32)
    if t.size == 0:
        return frames
    if x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height:
        raise ValueError(f"events fall outside the {height}x{width} sensor: x in [{x.min()}, {x.max()}], "
                         f"y in [{y.min()}, {y.max()}]")
    if not np.isin(p, (-1, 0, 1)).all():
        raise ValueError(f"polarity p must be 0/1 or -1/+1, got values {np.unique(p)[:5]}")
    t0, t1 = t.min(), t.max()
    if np.issubdtype(t.dtype, np.integer):
        bins = (t.astype(np.int64) - t0) * T // (int(t1) - int(t0) + 1)
    else:
        span = float(t1 - t0) or 1.0
        bins = np.minimum(((t - t0) / span * T).astype(np.int64), T - 1)
    channel = (p > 0).astype(np.int64)  # -1/0 -> OFF (0), +1 -> ON (1)
    flat = ((bins * 2 + channel) * height + y) * width + x  # index into (T, 2, H, W)
    counts = np.bincount(flat, minlength=T * 2 * height * width)
    return torch.from_numpy(counts.astype(np.float32)).view(T, 2, height, width)


class EventFrames(Dataset):
    """``(frames float32 [T, 2, H, W], label int64)`` from a list of npz files, binned on access."""

    def __init__(self, files: list[str | os.PathLike], labels: list[int], T: int, height: int, width: int):
        if len(files) != len(labels):
            raise ValueError(f"files and labels must have one length, got {len(files)} and {len(labels)}")
        self.files, self.labels = [Path(f) for f in files], [int(c) for c in labels]
        self.T, self.height, self.width = T, height, width

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        frames = events_to_frames(load_events(self.files[i]), self.T, self.height, self.width)
        return frames, torch.tensor(self.labels[i])


def event_folder(root: str | os.PathLike, T: int, height: int, width: int) -> EventFrames:
    """``root/<class name>/*.npz`` (classes sorted by name -> labels 0, 1, ...) as ``EventFrames``."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    files, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).glob("*.npz")):
            files.append(f)
            labels.append(label)
    if not files:
        raise FileNotFoundError(f"no event samples found: looked for {root}/<class>/*.npz. Convert the dataset "
                                "(e.g. DVS128 Gesture, CIFAR10-DVS) to npz files with arrays x, y, t, p.")
    return EventFrames(files, labels, T, height, width)
