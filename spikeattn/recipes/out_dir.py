"""A run's output folder: a new run never overwrites another run's files; a resumed one needs its checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from spikeattn.train.loop import CHECKPOINT_NAME

__all__ = ["RUN_FILES", "check_out_dir", "next_free_dir"]

# What a run leaves behind; a folder holding any of them belongs to a run. (metrics.jsonl would be
# truncated by a new run at once, the rest replaced at its end.)
RUN_FILES = (CHECKPOINT_NAME, "metrics.jsonl", "summary.json", "model.pt", "result.json", "pretrained.pt")


def check_out_dir(out: str | os.PathLike, resume: bool) -> Path:
    """``out`` as a Path, after checking it suits the run: ``FileExistsError`` when a new run would write into
    another run's folder, ``FileNotFoundError`` when a resumed run finds no checkpoint there."""
    out = Path(out)
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint {out / CHECKPOINT_NAME}")
        return out
    taken = [name for name in RUN_FILES if (out / name).exists()]
    if taken:
        raise FileExistsError(f"{out} already holds a run ({', '.join(taken)}): resume it (--resume) "
                              f"or choose another output folder (--out)")
    return out


def next_free_dir(out: str | os.PathLike) -> Path:
    """``out`` if it holds no run, else the first free ``out-2``, ``out-3``, ... (versions instead of refusing)."""
    out = Path(out)
    candidate, n = out, 1
    while any((candidate / name).exists() for name in RUN_FILES):
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    return candidate
