"""Where a step's time goes, by kind of op: dense GEMMs and convolutions, BatchNorm, everything else.

The dense part is the floor of any exact optimisation that keeps fp32 GEMMs: if spikeattn's non-dense
time fell to zero, a step would still take its dense time, so ``other library's step / our dense time``
bounds the whole-model speed-up reachable without changing the GEMMs themselves.
"""

from __future__ import annotations

from torch.profiler import ProfilerActivity, profile

# Ops that are one GEMM or convolution each (forward or a backward GEMM), by profiler name.
DENSE = {
    "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
    "aten::convolution_backward", "mkldnn::_linear_pointwise", "spikeattn::spike_grad_weight",
}
NORM = {"aten::native_batch_norm", "aten::native_batch_norm_backward"}


def op_time_ms(fn, warmup: int = 1) -> dict:
    """Self CPU time of one call of ``fn`` (ms of the calling thread), split into dense / batch_norm / other."""
    for _ in range(warmup):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    out = {"dense": 0.0, "batch_norm": 0.0, "other": 0.0}
    for event in prof.key_averages():
        kind = "dense" if event.key in DENSE else "batch_norm" if event.key in NORM else "other"
        out[kind] += event.self_cpu_time_total / 1e3
    out["total"] = sum(out.values())
    return out


def dense_floor(cases: dict) -> dict:
    """``{case: {lib: op_time_ms}}`` for ``{case: {lib: fn}}``, and per case the bound on our speed-up:
    the other library's profiled step over our dense time."""
    result = {}
    for case, libs in cases.items():
        row = {lib: op_time_ms(fn) for lib, fn in libs.items()}
        ours, theirs = list(libs)
        row["speedup_bound_if_only_dense_remained"] = row[theirs]["total"] / row[ours]["dense"]
        result[case] = row
    return result
