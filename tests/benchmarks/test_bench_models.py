"""benchmarks/bench_models.py cannot rot silently: a --quick run fills every field, the libraries'
parameter counts match, and with the same weights and tokens the encoders agree."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture
def bench(import_bench):
    return import_bench("bench_models")  # spikingjelly and h5py: installed by make setup


def test_quick_run_writes_json(bench, tmp_path):
    out = tmp_path / "models.json"
    report = bench.main(["--quick", "--threads", "1", "--malloc", "default", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(report))
    assert data["threads"] == [1] and data["allocator"] == bench.MALLOC["default"]
    assert len(data["load_avg_1min"]) == 2
    sf = data["spikformer"]["1"]
    for case in ("train_step", "inference"):
        for lib in ("spikeattn", "spikingjelly"):
            assert 0 < sf[case][lib]["min_ms"] <= sf[case][lib]["median_ms"]
            assert sf[case][lib]["cpu_ms_median"] > 0
        assert sf[case]["speedup"] == pytest.approx(sf[case]["spikingjelly"]["median_ms"] / sf[case]["spikeattn"]["median_ms"])
    assert sf["train_step"]["spikeattn"]["params"] == sf["train_step"]["spikingjelly"]["params"]
    for lib in ("spikeattn", "spikingjelly"):
        assert sf["train_step"][lib]["saved_mib"] > 0 and sf["inference"][lib]["peak_live_mib"] > 0
    assert set(sf["stages"]) == {"stem", "attention", "mlp", "head"}
    for row in sf["stages"].values():
        assert all(row[lib][k] > 0 for lib in ("spikeattn", "spikingjelly")
                   for k in ("train_ms", "train_cpu_ms", "inference_ms", "inference_cpu_ms"))
    assert sf["agreement"]["encoder_equal_fraction_same_tokens"] == 1.0
    for case in ("train_step", "inference"):
        row = sf["op_time"][case]
        for lib in ("spikeattn", "spikingjelly"):
            assert row[lib]["dense"] > 0 and row[lib]["total"] == pytest.approx(
                row[lib]["dense"] + row[lib]["batch_norm"] + row[lib]["other"])
        assert row["speedup_bound_if_only_dense_remained"] == pytest.approx(
            sf[case]["spikingjelly"]["median_ms"] / row["spikeattn"]["dense"])
    for preset in ("spikegpt-demo", "spikegpt-45m"):
        gpt = data["spikegpt"]["1"][preset]
        assert gpt["linear_autograd_backend"] in ("onednn", "torch")
        for path in ("as_built", "linear_autograd"):
            assert gpt["train"][path]["tokens_per_s"] > 0 and gpt["generate"][path]["median_ms"] > 0


def test_same_weights_same_encoder_outputs_with_activity(bench):
    torch.manual_seed(0)
    ours, theirs, reset_sj = bench.spikformer_pair(quick=True)
    agree = bench._model_stages.agreement(ours, theirs, reset_sj, torch.rand(2, 3, 32, 32))
    assert agree["encoder_equal_fraction_same_tokens"] == 1.0
    assert agree["block_equal_fraction_same_input"] == [1.0]
    assert agree["head_logits_max_abs_diff_same_tokens"] < 1e-5
    assert 0.05 < agree["encoder_output_mean"] < 4  # neurons fire: the comparison means something
    # the stems differ only by where they pool (before or after the LIF): most values still agree
    assert 0.5 < agree["stem_equal_fraction"] < 1.0


def test_peak_live_bytes_counts_held_outputs(bench):
    def held():
        a = torch.ones(1000)          # 4000 bytes
        b = a + 1                     # +4000 while a lives
        return b * 2

    assert bench._peak_live_bytes(held) >= 8000
