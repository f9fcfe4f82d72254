"""The one file format of checkpoints and model files: a checksummed, versioned envelope around ``torch.save``.

Layout: ``MAGIC``, one JSON header line ``{"format_version", "kind", "bytes", "sha256"}``, then the
``torch.save`` payload. torch's own zip format does not check its CRCs on load (a checkpoint with
flipped bytes resumed with a 2.4e24 weight), so the reader hashes the payload before unpickling.

Writing is atomic, even when the process is killed: the data goes into an unnamed ``O_TMPFILE`` inode
(gone with the process) that is linked under a temp name and renamed into place only once complete.
A kill in the instant between link and rename leaves that temp name (with complete data); where the
file system has no ``O_TMPFILE``, a named temp file is written instead. Either way, temps of dead
processes are swept on the next save in the folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

__all__ = ["FORMAT_VERSION", "CheckpointError", "write_file", "read_file", "load_state_checked"]

MAGIC = b"\x89spikeattn\r\n\x1a\n"
FORMAT_VERSION = 1
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


class CheckpointError(ValueError):
    """A checkpoint or model file that is corrupt, truncated, foreign or of another kind."""


def write_file(obj, path: str | os.PathLike, kind: str) -> Path:
    """``torch.save(obj)`` to ``path`` inside the checksummed envelope, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(path.parent)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    header = {"format_version": FORMAT_VERSION, "kind": kind, "bytes": len(payload),
              "sha256": hashlib.sha256(payload).hexdigest()}
    blob = [MAGIC, json.dumps(header).encode() + b"\n", payload]
    fd = _open_unnamed(path.parent)
    if fd is None:
        _write_named(path, blob)
    else:
        _write_unnamed(fd, path, blob)
    # Make the rename itself durable (the directory entry), not just the file contents.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _open_unnamed(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (Linux ``O_TMPFILE``), or None where the OS or file system lacks it."""
    if not hasattr(os, "O_TMPFILE") or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o644)
    except OSError:
        return None


def _write_unnamed(fd: int, path: Path, blob: list) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with os.fdopen(fd, "wb") as f:
            for part in blob:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
            # Linked under a temp name for the instant before the atomic rename (os.link cannot overwrite).
            # A dir_fd makes Python call linkat(AT_SYMLINK_FOLLOW), which links the inode behind the fd.
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.link(f"/proc/self/fd/{f.fileno()}", tmp.name, dst_dir_fd=folder, follow_symlinks=True)
            finally:
                os.close(folder)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_named(path: Path, blob: list) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for part in blob:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only there when saving failed before the rename


def _sweep_stale_temps(folder: Path) -> None:
    """Remove ``.<name>.tmp-<pid>`` files left by writers that were killed (their pid is gone)."""
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        if m and not _alive(int(m["pid"])):
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers: this process is not writing that file now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_file(path: str | os.PathLike, kind: str | tuple[str, ...], map_location="cpu"):
    """The object saved by ``write_file(obj, path, kind)`` (``kind`` may list several accepted kinds).

    Anything else raises ``CheckpointError`` naming the file and the problem.
    """
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    kind = " or ".join(kinds)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            raise CheckpointError(f"{path}: not a spikeattn {kind} file ({_describe(head)})")
        try:
            header = json.loads(f.readline())
            version, size, digest = header["format_version"], header["bytes"], header["sha256"]
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: damaged header ({type(e).__name__}: {e})") from None
        if version != FORMAT_VERSION:
            raise CheckpointError(f"{path}: format version {version}, this spikeattn reads version {FORMAT_VERSION}")
        if header.get("kind") not in kinds:
            raise CheckpointError(f"{path}: a spikeattn {header.get('kind')} file, not a {kind} file")
        payload = f.read()
    if len(payload) != size:
        raise CheckpointError(f"{path}: truncated ({len(payload)} of {size} payload bytes); the file is incomplete")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch (sha256 of the contents differs from the one saved): "
                              "the file is corrupted")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable contents ({type(e).__name__}: {str(e).splitlines()[0]})") from e


def _describe(head: bytes) -> str:
    if head.startswith(b"PK"):
        return "a plain torch.save zip, e.g. from an older spikeattn without checksums: re-save it or retrain"
    if not head:
        return "the file is empty"
    return f"it starts with {head[:8]!r}"


def load_state_checked(model: torch.nn.Module, state: dict, path) -> None:
    """``model.load_state_dict(state)``, with one short message naming the file when it was made for another config."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(x)} {what} (e.g. {x[0]})" for x, what in
                 ((wrong, "tensors of another shape"), (missing, "missing"), (unexpected, "unexpected")) if x]
        raise CheckpointError(f"{path}: made for another model config: " + ", ".join(parts))
    model.load_state_dict(state)
