"""The artifact's two checksum implementations agree: the writer (spikeattn/export/artifact.py) and
the torch-free reader of the Lava runtime (hardware/lava/artifact.py, numpy + stdlib only, loaded
by path so no Lava env is needed); the reader refuses any edited byte. """

from __future__ import annotations

import json

import numpy as np
import pytest

from spikeattn._paths import runtime_module
from spikeattn.export import artifact as writer
from spikeattn.export import to_lava
from tests.export.helpers import fashion_input, mlp


@pytest.fixture(scope="module")
def reader():
    return runtime_module("artifact")


@pytest.fixture
def art(tmp_path):
    return to_lava(mlp(hidden=16), tmp_path / "net", fashion_input(1, 2))


def test_same_format_constants(reader):
    assert (reader.SCHEMA_VERSION, reader.FORMAT, reader.GRAPH_FILE, reader.WEIGHTS_FILE) == \
           (writer.SCHEMA_VERSION, writer.FORMAT, writer.GRAPH_FILE, writer.WEIGHTS_FILE)


def test_digests_agree_on_the_same_bytes(reader, art):
    graph = json.loads((art.path / "graph.json").read_text())
    wpath = art.path / "weights.npz"
    assert reader.graph_digest(graph) == writer.graph_digest(graph) == graph["checksum"]["graph"]
    assert reader.file_digest(str(wpath)) == writer.file_digest(wpath) == graph["checksum"]["weights.npz"]
    loaded, weights = reader.load(str(art.path))
    assert loaded == graph and set(weights) == {v for n in graph["nodes"] for v in n.get("params", {}).values()}


@pytest.mark.parametrize("seed", range(5))
def test_digests_agree_on_other_graphs(reader, seed):
    """Key order does not matter, any value does, and both sides say so alike."""
    rng = np.random.default_rng(seed)
    graph = {"nodes": [{"name": f"n{i}", "op": "lif", "attrs": {"v_th": float(rng.normal()), "mode": int(i)},
                        "inputs": [f"n{i - 1}"] if i else []} for i in range(int(rng.integers(1, 6)))],
             "output": "n0", "input_unit": float(rng.random()), "note": "µ-units ✓", "checksum": {"graph": "x"}}
    shuffled = dict(reversed(list(graph.items())))
    assert reader.graph_digest(graph) == writer.graph_digest(graph) == writer.graph_digest(shuffled)
    changed = json.loads(json.dumps(graph))
    changed["nodes"][0]["attrs"]["v_th"] += 1e-9
    assert reader.graph_digest(changed) == writer.graph_digest(changed) != writer.graph_digest(graph)
    # the checksum block itself is not hashed
    assert writer.graph_digest({**graph, "checksum": {"graph": "y"}}) == writer.graph_digest(graph)


def test_tampered_graph_refused(reader, art):
    gpath = art.path / "graph.json"
    graph = json.loads(gpath.read_text())
    lif = next(n for n in graph["nodes"] if n["op"] == "lif")
    lif["attrs"]["v_th"] = 0.5                        # a plausible edit, checksum left as it was
    gpath.write_text(json.dumps(graph))
    with pytest.raises(reader.ArtifactError, match="graph.json was modified"):
        reader.load(str(art.path))


def test_tampered_weights_refused(reader, art):
    wpath = art.path / "weights.npz"
    data = bytearray(wpath.read_bytes())
    data[len(data) // 2] ^= 0x01                      # one bit inside the arrays
    wpath.write_bytes(bytes(data))
    with pytest.raises(reader.ArtifactError, match="weights.npz was modified"):
        reader.load(str(art.path))


def test_untouched_artifact_loads_after_rewrite(reader, art):
    """Rewriting the same JSON in another layout keeps the checksum valid (it hashes content)."""
    gpath = art.path / "graph.json"
    gpath.write_text(json.dumps(json.loads(gpath.read_text()), indent=4, sort_keys=True))
    reader.load(str(art.path))


def test_wrong_schema_refused(reader, art):
    gpath = art.path / "graph.json"
    graph = json.loads(gpath.read_text())
    graph["schema_version"] = 99
    gpath.write_text(json.dumps(graph))
    with pytest.raises(reader.ArtifactError, match="schema 99"):
        reader.load(str(art.path))
