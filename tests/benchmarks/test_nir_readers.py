"""benchmarks/nir_readers.py cannot rot silently: its comparison finds what the table says, on one network."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from spikeattn.data import fashion_mnist
from spikeattn.export import fold_batchnorm

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
RESULT = BENCH_DIR / "results" / "nir_readers.json"


def _bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    return importlib.import_module("nir_readers")


def test_compare_finds_equal_spikes_and_reader_errors(monkeypatch):
    bench = _bench(monkeypatch)
    images = fashion_mnist("test", limit=6).images
    build, flat = bench.NETWORKS["mlp with Flatten (image input)"]
    model = fold_batchnorm(build())
    for reader in ("spikeattn", "snntorch"):
        row = bench.compare(model, flat, reader, 1, images)
        assert row["status"] == "equal" and row["min_equal_fraction"] == 1.0, (reader, row)
    crash = bench.compare(model, flat, "snntorch", 6, images)     # snntorch's batch-Flatten bug
    assert crash["status"] == "error" and "shapes cannot be multiplied" in crash["error"]
    static = {r["kind"]: r["status"] for r in bench.nirtorch_static(model, flat, images, 2)}
    assert static == {"Flatten": "wrong shape", "Affine": "differs"}


def test_recorded_json_covers_every_network_and_reader():
    data = json.loads(RESULT.read_text())
    runs = [r for r in data["runs"] if "variant" not in r]
    assert {r["reader"] for r in runs} == {"spikeattn", "snntorch", "norse", "sinabs"}
    assert all(r["status"] == "equal" for r in runs if r["reader"] == "spikeattn")
    assert len(runs) == 4 * 2 * len({r["network"] for r in runs})
