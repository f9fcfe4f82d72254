"""Spiking self-attention fwd+bwd: spikeattn vs spikingjelly 2.0, time and activation memory.

Two cases at Spikformer-4-384 sizes (T=4, N=64 tokens, C=384, 12 heads): one SSA layer, and one
encoder block (SSA + MLP with residuals). Both libraries run in the same process, interleaved, on
the same spike input. Time is the median over repeats of forward + backward of ``(out * g).sum()``;
memory is the bytes autograd saves for backward (``saved_tensors_hooks``, each storage counted once),
i.e. the activation memory a training step holds at its peak, excluding parameters.

    python benchmarks/bench_attention.py            # writes benchmarks/results/attention_cpu.json
    python benchmarks/bench_attention.py --quick    # tiny sizes, a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import spikeattn
from spikeattn.layers import SpikformerBlock, SpikingSelfAttention

RESULTS = Path(__file__).resolve().parent / "results" / "attention_cpu.json"


def saved_bytes(fn):
    """Run ``fn()`` and return (its output, bytes of the distinct storages autograd saved)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        storages[s.data_ptr()] = max(storages.get(s.data_ptr(), 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


def sj_modules(dim, heads):
    """spikingjelly 2.0's own Spikformer SSA layer and encoder block (LIF tau 2, detach_reset)."""
    try:
        from spikingjelly.activation_based import functional
        from spikingjelly.activation_based.layer.attention import SpikingSelfAttention as SJAttention
        from spikingjelly.activation_based.model.spikformer import SpikformerBlock as SJBlock
    except ImportError as e:  # its model package imports h5py (distributed inference helpers)
        raise SystemExit(f"spikingjelly 2.0 with its runtime deps is needed for this benchmark: {e}") from e
    return SJAttention(dim, heads), SJBlock(dim, heads), functional.reset_net


def make_cases(t, b, n, c, heads):
    """{case: {lib: (module, input, reset)}}; spikingjelly's layout is [T, B, C, N] / [T, B, C, H, W]."""
    side = int(round(n ** 0.5))
    if side * side != n:
        raise ValueError(f"--tokens must be a square (the block takes an H x W grid), got {n}")
    torch.manual_seed(0)
    x = (torch.rand(t, b, n, c) < 0.2).float()  # spikes at a 20% rate
    sj_attn, sj_block, sj_reset = sj_modules(c, heads)
    x_sj = x.transpose(2, 3).contiguous()       # (T, B, C, N)
    return {
        "ssa": {"spikeattn": (SpikingSelfAttention(c, heads), x, spikeattn.reset),
                "spikingjelly": (sj_attn, x_sj, sj_reset)},
        "block": {"spikeattn": (SpikformerBlock(c, heads), x, spikeattn.reset),
                  "spikingjelly": (sj_block, x_sj.reshape(t, b, c, side, side), sj_reset)},
    }


def step(module, x, reset, grad):
    """One forward + backward; returns (seconds, saved bytes)."""
    reset(module)
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out, nbytes = saved_bytes(lambda: module(x))
    (out * grad.reshape(out.shape)).sum().backward()
    return time.perf_counter() - start, nbytes


def run(args) -> dict:
    cases = make_cases(args.T, args.batch, args.tokens, args.dim, args.heads)
    g = torch.randn(args.T * args.batch * args.tokens * args.dim, generator=torch.Generator().manual_seed(1))
    results = {}
    for case, libs in cases.items():
        times = {lib: [] for lib in libs}
        mem = {}
        for i in range(args.warmup + args.repeats):
            for lib, (module, x, reset) in libs.items():  # interleaved: both see the same machine load
                sec, mem[lib] = step(module, x, reset, g)
                if i >= args.warmup:
                    times[lib].append(sec)
        row = {lib: {"ms_median": 1e3 * statistics.median(ts), "ms_min": 1e3 * min(ts),
                     "ms_all": [round(1e3 * s, 2) for s in ts], "saved_mib": mem[lib] / 2**20,
                     "params": sum(p.numel() for p in libs[lib][0].parameters())} for lib, ts in times.items()}
        row["speedup"] = row["spikingjelly"]["ms_median"] / row["spikeattn"]["ms_median"]
        row["speedup_min"] = row["spikingjelly"]["ms_min"] / row["spikeattn"]["ms_min"]
        row["memory_ratio"] = row["spikeattn"]["saved_mib"] / row["spikingjelly"]["saved_mib"]
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
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1 repeat (smoke test)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON path (default {RESULTS}; --quick: none)")
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.batch, args.tokens, args.dim, args.heads, args.repeats, args.warmup = 2, 2, 16, 64, 4, 1, 0
    results = run(args)
    report = {
        "benchmark": "attention fwd+bwd, spikeattn vs spikingjelly 2.0",
        "device": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "load_avg": os.getloadavg(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__, "sizes": {k: getattr(args, k) for k in ("T", "batch", "tokens", "dim", "heads")},
        "repeats": args.repeats, "results": results,
    }
    print(table(report))
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    return report


def table(report) -> str:
    lines = [f"{'case':6} {'library':13} {'ms median':>10} {'ms min':>8} {'saved MiB':>10} {'params':>9}"]
    for case, row in report["results"].items():
        for lib in ("spikeattn", "spikingjelly"):
            r = row[lib]
            lines.append(f"{case:6} {lib:13} {r['ms_median']:10.1f} {r['ms_min']:8.1f} {r['saved_mib']:10.2f} {r['params']:9d}")
        lines.append(f"{case:6} {'ratio':13} speedup x{row['speedup']:.2f} (min x{row['speedup_min']:.2f}), "
                     f"memory x{row['memory_ratio']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
