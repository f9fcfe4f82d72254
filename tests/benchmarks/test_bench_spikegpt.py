"""benchmarks/bench_spikegpt.py cannot rot silently: a --quick run writes complete JSON."""

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
        importlib.import_module("bench_spikegpt").main(["--quick", "--out", str(tmp_path / "g.json")])
    finally:
        torch.set_num_threads(threads)
    data = json.loads((tmp_path / "g.json").read_text())
    gen = data["generation"]
    assert data["train"]["tokens_per_s"] > 0
    assert 0 < gen["recurrent_state_bytes"] < gen["parallel_recompute"]["bytes_allocated"]
    assert gen["speedup_recurrent_vs_parallel"] == gen["parallel_recompute"]["median_ms"] / gen["recurrent_step"]["median_ms"]
