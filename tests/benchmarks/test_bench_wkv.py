"""benchmarks/bench_wkv.py cannot rot silently: a --quick run writes complete, agreeing JSON."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def test_quick_run(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    threads = torch.get_num_threads()
    try:
        bench = importlib.import_module("bench_wkv")
        assert bench.main(["--quick", "--threads", "1", "--repeats", "2", "--out", str(tmp_path / "w.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    data = json.loads((tmp_path / "w.json").read_text())
    assert data["all_checks_ok"] and {r["backend"] for r in data["rows"]} == {"torch", "cpu", "cpu-scalar"}
    assert all(0 < r["min_ms"] <= r["median_ms"] for r in data["rows"])
