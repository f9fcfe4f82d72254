"""benchmarks/bench_lif.py cannot rot silently: a --quick CPU run writes the JSON with every key,
every library's rows and passing agreement checks; the CUDA mode's pieces run on CPU tensors."""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
LIBRARIES = {"spikeattn torch", "spikeattn cpu", "spikingjelly", "snntorch"}


@pytest.fixture
def bench(monkeypatch):
    """The benchmark modules, imported as the script imports them (its folder on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    threads = torch.get_num_threads()
    yield types.SimpleNamespace(**{m: importlib.import_module(m) for m in ("bench_lif", "_common", "_lif_libs", "_lif_cuda")})
    torch.set_num_threads(threads)  # main() sets the thread count for the whole process


def test_quick_cpu_run_writes_complete_agreeing_json(bench, tmp_path):
    pytest.importorskip("spikingjelly")
    pytest.importorskip("snntorch")
    out = tmp_path / "lif.json"
    assert bench.bench_lif.main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("date", "versions", "cpu_model", "threads", "shapes", "rows", "checks", "all_checks_ok", "neuron"):
        assert key in data, key
    assert data["threads"] == 1 and data["versions"]["torch"] == torch.__version__
    assert {r["library"] for r in data["rows"]} == LIBRARIES
    assert len(data["rows"]) == len(data["shapes"]) * 7  # 3 libraries x 2 detach_reset variants + snntorch
    for r in data["rows"]:
        assert 0 < r["min_ms"] <= r["median_ms"], r
        assert r["saved_bytes_per_neuron_step"] > 0 and 0 < r["firing_rate"] < 1, r
        assert r["speedup_vs_spikingjelly"] > 0 and r["saved_ratio_vs_spikingjelly"] > 0, r
    agreements = [c for c in data["checks"] if "vs spikeattn torch" in c["check"]]
    assert len(agreements) == len(data["shapes"]) * 2 * 2  # cpu and spikingjelly, each detach_reset variant
    assert all(c["ok"] and c["spikes_equal"] for c in agreements), agreements
    assert data["all_checks_ok"] is True
    sj = {(r["shape_str"], r["detach_reset"]): r for r in data["rows"] if r["library"] == "spikingjelly"}
    assert {r["saved_bytes_per_neuron_step"] for r in sj.values()} == {12.0, 8.0}  # the figures measured before


def test_agreement_check_fails_on_a_wrong_spike(bench):
    libs = bench._lif_libs
    spikes, grad = torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.5, -1.0, 2.0])
    assert libs.agreement("same", (spikes, grad), (spikes.clone(), grad.clone()))["ok"]
    flipped = libs.agreement("flip", (spikes, grad), (torch.tensor([1.0, 1.0, 1.0]), grad))
    assert not flipped["ok"] and flipped["spikes_mismatched"] == 1
    assert not libs.agreement("grad", (spikes, grad), (spikes, grad * (1 + 1e-3)))["ok"]


def test_saved_bytes_counts_each_storage_once(bench):
    x = torch.randn(10, 100, requires_grad=True)
    _, nbytes = bench._common.saved_bytes(lambda: (x * x).sum())  # mul saves x twice: one storage
    assert nbytes == 10 * 100 * 4


def test_cuda_mode_pieces_on_cpu_tensors(bench, monkeypatch):
    """No GPU here: run the CUDA grid's per-config code with the CPU timer and CPU libraries."""
    cuda, libs = bench._lif_cuda, bench._lif_libs
    assert cuda.hbm_peak("NVIDIA H100 80GB HBM3") == 3.35e12 and cuda.hbm_peak("NVIDIA H100 PCIe") == 2.0e12
    assert cuda.hbm_peak("NVIDIA H200") == 4.8e12 and cuda.hbm_peak("Some Future GPU") is None
    assert [cuda.min_bytes_per_neuron_step(d) for d in cuda.DTYPES] == [24, 16, 16]
    monkeypatch.setattr(bench._common, "time_cuda", bench._common.time_cpu)
    dev = torch.device("cpu")
    runners = [libs.spikeattn_lif("cpu", False)]
    rows, checks = [], []
    args = types.SimpleNamespace(warmup=0, repeats=1)
    for dtype in cuda.DTYPES:
        cuda._run_config(runners, 3, 37, dtype, dev, args, 1e12, rows, checks)
    assert [r["dtype"] for r in rows] == ["float32", "float16", "bfloat16"]
    assert all(r["achieved_GBps"] > 0 and r["hbm_peak_fraction"] > 0 for r in rows), rows
    assert all(c["ok"] for c in checks), checks
