"""Load and validate an exported artifact: ``graph.json`` + ``weights.npz`` (numpy and json only).

The checksum block of graph.json holds the sha256 of the canonical graph JSON (every key but
``checksum``, sorted, compact) and of the weights file's bytes; any edit of either is refused.
Mirrors ``spikeattn/export/artifact.py`` (the writer); a test checks that both agree.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

SCHEMA_VERSION = 1
FORMAT = "spikeattn-lava"
GRAPH_FILE, WEIGHTS_FILE = "graph.json", "weights.npz"


class ArtifactError(ValueError):
    """The artifact is missing, of another schema version, or fails its checksum."""


def graph_digest(graph: dict) -> str:
    body = {k: v for k, v in graph.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path: str) -> tuple[dict, dict]:
    """``(graph, weights)`` of the artifact folder ``path``; raises ArtifactError if it is not valid."""
    gpath, wpath = os.path.join(path, GRAPH_FILE), os.path.join(path, WEIGHTS_FILE)
    for p in (gpath, wpath):
        if not os.path.isfile(p):
            raise ArtifactError(f"artifact {path!r} is missing {os.path.basename(p)}")
    try:
        with open(gpath) as f:
            graph = json.load(f)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{gpath}: not valid JSON ({e})") from None
    if graph.get("format") != FORMAT or graph.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(f"{gpath}: format {graph.get('format')!r} schema {graph.get('schema_version')!r}, "
                            f"this runtime reads {FORMAT!r} schema {SCHEMA_VERSION}")
    want = graph.get("checksum") or {}
    if want.get("graph") != graph_digest(graph):
        raise ArtifactError(f"{gpath}: checksum mismatch: graph.json was modified after export")
    if want.get(WEIGHTS_FILE) != file_digest(wpath):
        raise ArtifactError(f"{wpath}: checksum mismatch: weights.npz was modified after export")
    with np.load(wpath, allow_pickle=False) as z:
        weights = {k: z[k] for k in z.files}
    for node in graph["nodes"]:
        for key in node.get("params", {}).values():
            if key not in weights:
                raise ArtifactError(f"{wpath}: no array {key!r} (node {node['name']!r})")
    return graph, weights


def check_input(graph: dict, x: np.ndarray) -> None:
    """Raise ValueError unless ``x`` is ``[T, B, *input_shape]``."""
    shape = tuple(graph["nodes"][0]["shape"])
    if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
        raise ValueError(f"input_spikes must be [T, B, {', '.join(map(str, shape))}] for this artifact, "
                         f"got shape {tuple(x.shape)}")


def save_npz(path: str, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` atomically (a reader never sees half a file)."""
    tmp = path + ".part.npz"   # np.savez appends .npz unless present
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
