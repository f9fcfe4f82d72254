"""Spiking self-attention fwd+bwd: spikeattn vs spikingjelly 2.0, time and activation memory.

Two cases at Spikformer-4-384 sizes (T=4, N=64 tokens, C=384, 12 heads): one SSA layer, and one
encoder block (SSA + MLP with residuals). Both libraries run in the same process, interleaved, on
the same spike input, with spikingjelly's weights copied into ours (the outputs are compared). Time
is the median (and min) wall clock over repeats of forward + backward of ``(out * g).sum()``, plus
the CPU time of all threads (``process_time``: total work, less disturbed by other jobs on a shared CPU);
memory is the bytes autograd saves for backward (``saved_tensors_hooks``, each storage counted once),
i.e. the activation memory a training step holds at its peak, excluding parameters.

    python benchmarks/bench_attention.py            # writes benchmarks/results/attention_cpu.json
    python benchmarks/bench_attention.py --quick    # tiny sizes, a smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import _common
import spikeattn
from spikeattn.layers import SpikformerBlock, SpikingSelfAttention

RESULTS = Path(__file__).resolve().parent / "results" / "attention_cpu.json"


def sj_modules(dim, heads):
    """spikingjelly 2.0's own Spikformer SSA layer and encoder block (LIF tau 2, detach_reset)."""
    try:
        from spikingjelly.activation_based import functional
        from spikingjelly.activation_based.layer.attention import SpikingSelfAttention as SJAttention
        from spikingjelly.activation_based.model.spikformer import SpikformerBlock as SJBlock
    except ImportError as e:  # its model package imports h5py (distributed inference helpers)
        raise SystemExit(f"spikingjelly 2.0 with its runtime deps is needed for this benchmark: {e}") from e
    return SJAttention(dim, heads), SJBlock(dim, heads), functional.reset_net


def copy_weights(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Load spikingjelly's weights into ours: same keys in the same order, Conv1d k=1 == Linear."""
    src, dst = theirs.state_dict(), ours.state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"state dicts differ: {len(src)} vs {len(dst)} entries")
    ours.load_state_dict({k: v.reshape(dst[k].shape) for k, v in zip(dst, src.values())})


def agreement(libs, t, b, n, c) -> dict:
    """Same weights, same input: how many output values the two libraries agree on."""
    (ours, x, reset), (theirs, x_sj, reset_sj) = libs["spikeattn"], libs["spikingjelly"]
    reset(ours), reset_sj(theirs)
    with torch.no_grad():
        a = ours(x)
        b_ = theirs(x_sj).reshape(t, b, c, n).transpose(2, 3)
    return {"equal_fraction": (a == b_).float().mean().item(), "output_mean": a.mean().item()}


def make_cases(t, b, n, c, heads):
    """{case: {lib: (module, input, reset)}}; spikingjelly's layout is [T, B, C, N] / [T, B, C, H, W]."""
    side = int(round(n ** 0.5))
    if side * side != n:
        raise ValueError(f"--tokens must be a square (the block takes an H x W grid), got {n}")
    torch.manual_seed(0)
    x = (torch.rand(t, b, n, c) < 0.2).float()  # spikes at a 20% rate
    sj_attn, sj_block, sj_reset = sj_modules(c, heads)
    x_sj = x.transpose(2, 3).contiguous()       # (T, B, C, N)
    for m in (*sj_attn.modules(), *sj_block.modules()):
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            # At init BN gives N(0, 1) currents and the attention LIF stays silent (all-zero output);
            # a shift of 1 gives firing rates like a trained network's (~10-30%).
            torch.nn.init.constant_(m.bias, 1.0)
    ours_attn, ours_block = SpikingSelfAttention(c, heads), SpikformerBlock(c, heads)
    copy_weights(ours_attn, sj_attn)
    copy_weights(ours_block, sj_block)
    return {
        "ssa": {"spikeattn": (ours_attn, x, spikeattn.reset),
                "spikingjelly": (sj_attn, x_sj, sj_reset)},
        "block": {"spikeattn": (ours_block, x, spikeattn.reset),
                  "spikingjelly": (sj_block, x_sj.reshape(t, b, c, side, side), sj_reset)},
    }


def step(module, x, reset, grad):
    """One forward + backward; returns (wall seconds, CPU seconds of all threads, saved bytes)."""
    reset(module)
    module.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter(), time.process_time()
    out, nbytes = _common.saved_bytes(lambda: module(x))
    (out * grad.reshape(out.shape)).sum().backward()
    return time.perf_counter() - wall, time.process_time() - cpu, nbytes


def run(args) -> dict:
    cases = make_cases(args.T, args.batch, args.tokens, args.dim, args.heads)
    g = torch.randn(args.T * args.batch * args.tokens * args.dim, generator=torch.Generator().manual_seed(1))
    results = {}
    for case, libs in cases.items():
        times = {lib: [] for lib in libs}
        cpu = {lib: [] for lib in libs}
        mem = {}
        for i in range(args.warmup + args.repeats):
            for lib, (module, x, reset) in libs.items():  # interleaved: both see the same machine load
                sec, cpu_sec, mem[lib] = step(module, x, reset, g)
                if i >= args.warmup:
                    times[lib].append(sec)
                    cpu[lib].append(cpu_sec)
        row = {lib: {**_common.summarize([1e3 * s for s in ts]), "ms_all": [round(1e3 * s, 2) for s in ts],
                     "cpu_ms_median": 1e3 * statistics.median(cpu[lib]), "saved_mib": mem[lib] / 2**20,
                     "params": sum(p.numel() for p in libs[lib][0].parameters())} for lib, ts in times.items()}
        row["speedup"] = row["spikingjelly"]["median_ms"] / row["spikeattn"]["median_ms"]
        row["speedup_min"] = row["spikingjelly"]["min_ms"] / row["spikeattn"]["min_ms"]
        row["cpu_time_ratio"] = row["spikeattn"]["cpu_ms_median"] / row["spikingjelly"]["cpu_ms_median"]
        row["memory_ratio"] = row["spikeattn"]["saved_mib"] / row["spikingjelly"]["saved_mib"]
        row["agreement"] = agreement(libs, args.T, args.batch, args.tokens, args.dim)
        results[case] = row
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", default="1,2",
                   help="comma-separated torch thread counts, each a separate run (default 1,2)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1 repeat (smoke test)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON path (default {RESULTS}; --quick: none)")
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.batch, args.tokens, args.dim, args.heads, args.repeats, args.warmup = 2, 2, 16, 64, 4, 1, 1
    thread_counts = [int(n) for n in str(args.threads).split(",")]
    load_before = os.getloadavg()[0]
    results = {}
    for n in thread_counts:  # one thread: the work itself; more: also how each library copes with sharing
        torch.set_num_threads(n)
        results[str(n)] = run(args)
    report = {
        "benchmark": "attention fwd+bwd on CPU, spikeattn vs spikingjelly 2.0 (same process, interleaved)",
        **_common.environment(("torch", "spikingjelly")), "device": "cpu", "threads": thread_counts,
        "load_avg_1min": [load_before, os.getloadavg()[0]],  # the CPU is shared: other work inflates times
        "sizes": {k: getattr(args, k) for k in ("T", "batch", "tokens", "dim", "heads")},
        "repeats": args.repeats, "results_by_threads": results,
    }
    print(table(report))
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        print(f"wrote {_common.write_json(out, report)}")
    return report


def table(report) -> str:
    lines = [f"{'threads':7} {'case':6} {'library':13} {'ms median':>10} {'ms min':>8} {'CPU ms':>8} {'saved MiB':>10} {'params':>9}"]
    for threads, results in report["results_by_threads"].items():
        lines += [f"{threads:7} " + line for line in _rows(results)]
    return "\n".join(lines)


def _rows(results) -> list[str]:
    lines = []
    for case, row in results.items():
        for lib in ("spikeattn", "spikingjelly"):
            r = row[lib]
            lines.append(f"{case:6} {lib:13} {r['median_ms']:10.1f} {r['min_ms']:8.1f} {r['cpu_ms_median']:8.1f} {r['saved_mib']:10.2f} {r['params']:9d}")
        lines.append(f"{case:6} {'ratio':13} speedup x{row['speedup']:.2f} (min x{row['speedup_min']:.2f}), "
                     f"CPU time x{row['cpu_time_ratio']:.2f}, memory x{row['memory_ratio']:.2f}; same outputs on "
                     f"{100 * row['agreement']['equal_fraction']:.2f}% of values (output mean {row['agreement']['output_mean']:.3f})")
    return lines


if __name__ == "__main__":
    main()
