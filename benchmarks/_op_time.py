"""Where a step's time goes, by kind of op: dense GEMMs and convolutions, BatchNorm, everything else.

The dense part is the floor of any exact optimisation that keeps fp32 GEMMs: if spikeattn's non-dense
time fell to zero, a step would still take its dense time, so ``other library's step / our dense time``
bounds the whole-model speed-up reachable without changing the GEMMs themselves. (Profiled times carry
the profiler's cost per op: compare shares within a library, and take the other library's step from
the unprofiled timing.)
"""

from __future__ import annotations

import statistics

from torch.profiler import ProfilerActivity, profile

# Ops that are one GEMM or convolution each (forward or a backward GEMM), by profiler name.
DENSE = {
    "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
    "aten::convolution_backward", "mkldnn::_linear_pointwise", "spikeattn::spike_grad_weight",
}
# BatchNorm's own ops; in training spikeattn's BN runs as batch_norm_update_stats (ATen's statistics) and the
# fused spikeattn::bn_lif_train (the normalisation inside the LIF kernel: counted as "other", with the LIF).
NORM = {"aten::native_batch_norm", "aten::native_batch_norm_backward", "aten::batch_norm_update_stats"}


def op_time_ms(fn, warmup: int = 1, repeats: int = 3) -> dict:
    """Self CPU time (ms of the calling thread) of ``fn`` split into dense / batch_norm / other: the
    median of each over ``repeats`` profiled calls (one call is noisy on a shared VM)."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        run = {"dense": 0.0, "batch_norm": 0.0, "other": 0.0}
        for event in prof.key_averages():
            kind = "dense" if event.key in DENSE else "batch_norm" if event.key in NORM else "other"
            run[kind] += event.self_cpu_time_total / 1e3
        runs.append(run)
    out = {kind: statistics.median(run[kind] for run in runs) for kind in runs[0]}
    out["total"] = sum(out.values())
    return out


def dense_floor(cases: dict, their_ms: dict) -> dict:
    """``{case: {lib: op_time_ms}}`` for ``{case: {lib: fn}}``, and per case the bound on our speed-up: the
    other library's measured step (``their_ms[case]``, median wall ms of the interleaved timing; its
    profiled time is inflated by the profiler's cost per op, and it runs many more small ops) over our
    profiled dense time."""
    result = {}
    for case, libs in cases.items():
        row = {lib: op_time_ms(fn) for lib, fn in libs.items()}
        row["speedup_bound_if_only_dense_remained"] = their_ms[case] / row[list(libs)[0]]["dense"]
        result[case] = row
    return result
