"""benchmarks/bench_linear.py cannot rot silently: a --quick run writes complete, agreeing JSON."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from spikeattn.ops.linear import onednn

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.skipif(not onednn.is_available(), reason="this torch has no oneDNN linear op")
def test_quick_run(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    threads = torch.get_num_threads()
    try:
        bench = importlib.import_module("bench_linear")
        rows = bench.main(["--quick", "--repeats", "2", "--out", str(tmp_path / "l.json")])
    finally:
        torch.set_num_threads(threads)
    data = json.loads((tmp_path / "l.json").read_text())
    assert data["all_checks_ok"] and data["rows"] == rows
    assert {r["gemm"] for r in rows} == {"forward", "grad_input"}
    assert all(r["torch_ms"] > 0 and r["onednn_ms"] > 0 and r["max_diff_rel"] < 1e-5 for r in rows)
