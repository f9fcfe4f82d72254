"""Export and run errors: every unsupported module listed, tampered artifact, bad input, env, timeout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import LavaError, NotExportable, PerStep, run_lava, to_lava
from spikeattn.export.artifact import write
from tests.export.helpers import mlp, require_lava

X = torch.rand(2, 1, 1, 28, 28)


def test_not_exportable_lists_every_problem(tmp_path):
    bn = nn.BatchNorm1d(16).train()
    net = nn.Sequential(PerStep(nn.Flatten()), nn.Linear(784, 16), nn.ReLU(), PerStep(bn), N.LIF(),
                        nn.Conv2d(1, 2, 3), N.LIF(step_mode="s"))
    with pytest.raises(NotExportable) as e:
        to_lava(net, tmp_path / "a", X)
    paths = [(p, t) for p, t, _ in e.value.problems]
    assert paths == [("2", "ReLU"), ("3.0", "BatchNorm1d"), ("5", "Conv2d"), ("6", "LIF")]
    assert "ReLU" in str(e.value) and "3.0" in str(e.value)
    assert not (tmp_path / "a").exists()


def test_artifact_files(tmp_path):
    art = to_lava(mlp(), tmp_path / "a", X)
    g = json.loads((tmp_path / "a" / "graph.json").read_text())
    assert g["format"] == "spikeattn-lava" and g["schema_version"] == 1 and set(g["checksum"]) == {"graph", "weights.npz"}
    assert [n["op"] for n in g["nodes"]] == ["input", "reshape", "linear", "lif", "linear", "lif"]
    with np.load(tmp_path / "a" / "weights.npz", allow_pickle=False) as z:
        assert z["1.weight"].dtype == np.float32 and z["1.weight"].shape == (64, 784)
    assert art.input_shape == (1, 28, 28)


@pytest.mark.parametrize("what", ["graph", "weights"])
def test_tampered_artifact(what, tmp_path):
    require_lava()
    to_lava(mlp(), tmp_path / "a", X)
    if what == "graph":
        p = tmp_path / "a" / "graph.json"
        p.write_text(p.read_text().replace('"v_th": 1.0', '"v_th": 0.5'))
    else:
        p = tmp_path / "a" / "weights.npz"
        data = bytearray(p.read_bytes())
        data[-100] ^= 1
        p.write_bytes(bytes(data))
    with pytest.raises(LavaError, match="checksum mismatch"):
        run_lava(tmp_path / "a", X.numpy())


def test_wrong_input_shape(tmp_path):
    art = to_lava(mlp(), tmp_path / "a", X)
    with pytest.raises(ValueError, match=r"input_spikes must be \[T, B, 1, 28, 28\].*\(2, 1, 28, 28\)"):
        run_lava(art, X.numpy()[:, 0])
    with pytest.raises(ValueError, match="NaN"):
        run_lava(art, np.full(X.shape, np.nan, np.float32))
    with pytest.raises(ValueError, match="weight_synapses must be 1 or 2, got 3"):
        run_lava(art, X.numpy(), fixed_point=True, weight_synapses=3)


def test_missing_env(tmp_path, monkeypatch):
    art = to_lava(mlp(), tmp_path / "a", X)
    monkeypatch.setenv("SPIKEATTN_LAVA_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(LavaError, match=r"set by \$SPIKEATTN_LAVA_PYTHON: .*nope/python.*`spikeattn lava-env`.*make lava-env.*"
                                        r"set SPIKEATTN_LAVA_PYTHON"):
        run_lava(art, X.numpy())


def test_env_found_in_user_cache(tmp_path, monkeypatch):
    """A wheel user's env: `spikeattn lava-env` builds into $XDG_CACHE_HOME/spikeattn/venv-lava, found there."""
    from spikeattn.export import lava

    monkeypatch.delenv("SPIKEATTN_LAVA_PYTHON", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(lava, "hardware_dir", lambda: tmp_path / "site-packages" / "spikeattn" / "_hardware")
    assert lava.lava_env_dir() == tmp_path / "spikeattn" / "venv-lava"
    with pytest.raises(LavaError, match=rf"looked for: {tmp_path}/spikeattn/venv-lava/bin/python"):
        run_lava(to_lava(mlp(), tmp_path / "a", X), X.numpy())
    py = tmp_path / "spikeattn" / "venv-lava" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("")
    assert lava.lava_python() == py


@pytest.mark.parametrize("shape", [(0, 1, 1, 28, 28), (2, 0, 1, 28, 28)])
def test_empty_time_or_batch(tmp_path, shape):
    art = to_lava(mlp(), tmp_path / "a", X)
    with pytest.raises(ValueError, match=r"at least one time step and one sample \(T, B >= 1\)"):
        run_lava(art, np.zeros(shape, np.float32))


def test_truncated_graph_json(tmp_path):
    to_lava(mlp(), tmp_path / "a", X)
    graph = tmp_path / "a" / "graph.json"
    graph.write_text(graph.read_text()[:200])
    with pytest.raises(ValueError, match=rf"{graph}: not a readable artifact graph \(truncated or damaged JSON"):
        run_lava(tmp_path / "a", X.numpy())


def test_relative_artifact_path(tmp_path, monkeypatch):
    """The README's relative paths: the runner starts in a temporary folder, so the path is resolved first."""
    require_lava()
    monkeypatch.chdir(tmp_path)
    to_lava(mlp(), "out/model.lava", X)
    out = run_lava("out/model.lava", X.numpy())
    assert out.shape[:2] == (2, 1)


def test_timeout(tmp_path):
    require_lava()
    art = to_lava(mlp(), tmp_path / "a", X)
    with pytest.raises(LavaError, match="timeout=0.05"):
        run_lava(art, X.numpy(), timeout=0.05)


def test_runtime_failure_carries_stderr(tmp_path):
    require_lava()
    art = to_lava(mlp(), tmp_path / "a", X)
    graph = {k: v for k, v in art.graph.items() if k not in ("format", "schema_version", "checksum")}
    graph["nodes"][2]["op"] = "warp_drive"   # a valid checksum over a graph the runtime cannot run
    with np.load(tmp_path / "a" / "weights.npz") as z:
        arrays = dict(z)
    bad = write(tmp_path / "b", graph, arrays)
    with pytest.raises(LavaError, match=r"(?s)failed \(exit status 1\).*warp_drive"):
        run_lava(bad, X.numpy())
