"""benchmarks/bench_spikegpt.py cannot rot silently: a --quick run against a baseline commit (HEAD here: two
worker processes, one on the git-archived package) writes complete JSON."""

from __future__ import annotations

import json
import subprocess

import pytest


def test_quick_run(import_bench, tmp_path):
    bench = import_bench("bench_spikegpt")
    bench.main(["--quick", "--baseline", "HEAD", "--out", str(tmp_path / "g.json")])
    data = json.loads((tmp_path / "g.json").read_text())
    assert len(data["baseline_commit"]) == 40
    packages = {data[name]["facts"]["package"] for name in ("baseline", "current")}
    assert len(packages) == 2 and str(bench.ROOT / "spikeattn") in "".join(packages)  # two packages ran
    for name in ("baseline", "current"):
        run = data[name]
        assert run["train"]["tokens_per_s"] > 0 and len(run["train"]["ms_all"]) == run["train"]["repeats"] == 2
        assert 0 < run["facts"]["state_bytes"] < run["facts"]["parallel_bytes_allocated"]
        assert run["speedup_recurrent_vs_parallel"] == run["parallel"]["median_ms"] / run["step"]["median_ms"]
    assert data["speedup_vs_baseline"]["train"] == data["baseline"]["train"]["median_ms"] / data["current"]["train"]["median_ms"]
    agreement = data["agreement"]
    assert agreement["spike_count"] > 0 and agreement["spikes_equal"]
    assert agreement["logits_max_abs_diff"] <= 1e-5 * agreement["logits_max_abs"]


def test_the_recorded_baseline_still_runs(import_bench, tmp_path):
    """The workers import benchmarks/ helpers next to an old package: nothing they import may need code newer
    than the record's baseline commit (a helper imported from the package broke this once)."""
    bench = import_bench("bench_spikegpt")
    if subprocess.run(["git", "-C", str(bench.ROOT), "cat-file", "-e", f"{bench.BASELINE}^{{commit}}"]).returncode:
        pytest.skip(f"this clone does not hold the baseline commit {bench.BASELINE[:10]}")
    bench.main(["--quick", "--repeats", "1", "--out", str(tmp_path / "g.json")])
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["baseline_commit"] == bench.BASELINE and data["agreement"]["spikes_equal"]
