"""benchmarks/bench_attention.py cannot rot silently: a --quick run fills every field, and with the
same weights spikeattn's SSA and block reproduce spikingjelly's outputs."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture
def bench(import_bench):
    pytest.importorskip("spikingjelly")
    pytest.importorskip("h5py")  # spikingjelly's model package imports it
    return import_bench("bench_attention")


def test_quick_run_writes_json(bench, tmp_path):
    out = tmp_path / "attention.json"
    report = bench.main(["--quick", "--threads", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(report))
    assert data["threads"] == [1] and data["sizes"]["T"] == 2
    for case in ("ssa", "block"):
        row = data["results_by_threads"]["1"][case]
        for lib in ("spikeattn", "spikingjelly"):
            assert 0 < row[lib]["min_ms"] <= row[lib]["median_ms"]
            assert row[lib]["saved_mib"] > 0
        assert row["spikeattn"]["params"] == row["spikingjelly"]["params"]
        assert row["memory_ratio"] == pytest.approx(row["spikeattn"]["saved_mib"] / row["spikingjelly"]["saved_mib"])
        assert row["memory_ratio"] < 1  # uint8 spikes for backward: always less than fp32 activations
        assert row["agreement"]["equal_fraction"] == 1.0


def test_same_weights_same_outputs_with_activity(bench):
    torch.manual_seed(0)
    cases = bench.make_cases(2, 2, 16, 32, 4)
    for case, libs in cases.items():
        agree = bench.agreement(libs, 2, 2, 16, 32)
        assert agree["equal_fraction"] > 0.999, (case, agree)
        assert 0.05 < agree["output_mean"] < 2.5, (case, agree)  # neurons fire: the comparison means something
