"""Write the Lava artifact: ``graph.json`` + ``weights.npz`` (no pickle) with sha256 checksums.

The checksum block of graph.json holds the sha256 of the canonical graph JSON (every key but
``checksum``, sorted, compact) and of the weights file's bytes. ``hardware/lava/artifact.py``
(the torch-free reader) recomputes both and refuses an edited artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
FORMAT = "spikeattn-lava"
GRAPH_FILE, WEIGHTS_FILE = "graph.json", "weights.npz"


@dataclass(frozen=True)
class LavaArtifact:
    """An exported artifact folder and its graph (``graph["nodes"][0]["shape"]`` is the input shape)."""

    path: Path
    graph: dict

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.graph["nodes"][0]["shape"])


def graph_digest(graph: dict) -> str:
    body = {k: v for k, v in graph.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write(path: str | os.PathLike, graph: dict, arrays: dict[str, np.ndarray]) -> LavaArtifact:
    """Write ``graph`` and ``arrays`` into the folder ``path`` (created). Returns the artifact."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    wpath = path / WEIGHTS_FILE
    tmp = path / (WEIGHTS_FILE + ".part.npz")   # np.savez appends .npz unless present
    np.savez(tmp, **{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()})
    os.replace(tmp, wpath)
    graph = {"format": FORMAT, "schema_version": SCHEMA_VERSION, **graph}
    graph["checksum"] = {"graph": graph_digest(graph), WEIGHTS_FILE: file_digest(wpath)}
    tmp = path / (GRAPH_FILE + ".part")
    tmp.write_text(json.dumps(graph, indent=1, allow_nan=False))
    os.replace(tmp, path / GRAPH_FILE)
    return LavaArtifact(path, graph)


def open_artifact(path: str | os.PathLike) -> LavaArtifact:
    """The artifact at ``path`` (graph only; the runtime verifies the checksums)."""
    gpath = Path(path) / GRAPH_FILE
    if not gpath.is_file():
        raise FileNotFoundError(f"artifact {str(path)!r} has no {GRAPH_FILE}")
    try:
        graph = json.loads(gpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{gpath}: not a readable artifact graph (truncated or damaged JSON: {e}); export it again") from None
    if not isinstance(graph, dict) or not graph.get("nodes"):
        raise ValueError(f"{gpath}: not a spikeattn artifact graph (no nodes); export it again")
    return LavaArtifact(Path(path), graph)
