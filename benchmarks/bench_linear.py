"""fp32 Linear on the CPU: torch's F.linear (MKL on x86) against oneDNN (spikeattn.ops.linear).

The shapes of a Spikformer-4-384 block at T=4, B=8, N=64 (M=2048 tokens): the fused QKV, the
output projection and the two MLP layers, forward (``x W^T``) and input gradient (``g W``).

    python benchmarks/bench_linear.py            # writes benchmarks/results/linear_cpu.json
    python benchmarks/bench_linear.py --quick    # one small shape, a smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch

import _common
from spikeattn.ops.linear import linear, onednn

RESULTS = Path(__file__).resolve().parent / "results" / "linear_cpu.json"
SHAPES = [(2048, 384, 1152), (2048, 384, 384), (2048, 384, 1536), (2048, 1536, 384)]  # (M, I, O)


def run(args) -> list[dict]:
    if not onednn.is_available():
        raise SystemExit("this torch has no oneDNN linear op: nothing to compare")
    shapes = [(256, 64, 128)] if args.quick else SHAPES
    rows = []
    for m, i, o in shapes:
        x, w, g = torch.randn(m, i), torch.randn(o, i), torch.randn(m, o)
        for what, a, b in (("forward", x, w), ("grad_input", g, w.T)):
            row = {"M": m, "I": i, "O": o, "gemm": what, "gflop": 2 * m * i * o / 1e9}
            for backend in ("torch", "onednn"):
                ms = statistics.median(_common.time_cpu(lambda: linear(a, b, backend=backend), args.warmup, args.repeats))
                row[f"{backend}_ms"], row[f"{backend}_gflops"] = ms, row["gflop"] / ms * 1e3
            row["speedup"] = row["torch_ms"] / row["onednn_ms"]
            ref, got = linear(a, b, backend="torch"), linear(a, b, backend="onednn")
            row["max_diff_rel"] = ((got - ref).abs().max() / ref.abs().max()).item()  # fp32 rounding only
            rows.append(row)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None, help=f"JSON path (default {RESULTS}; --quick: none)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args)
    print(_common.table(rows, [("M", "M", "d"), ("I", "I", "d"), ("O", "O", "d"), ("gemm", "gemm", "s"),
                               ("torch ms", "torch_ms", ".2f"), ("GFLOP/s", "torch_gflops", ".0f"),
                               ("onednn ms", "onednn_ms", ".2f"), ("GFLOP/s", "onednn_gflops", ".0f"),
                               ("speed-up", "speedup", ".2f")]))
    out = args.out or (None if args.quick else RESULTS)
    if out:
        data = {"benchmark": "fp32 Linear, F.linear (MKL) vs oneDNN", **_common.environment(("torch",)),
                "threads": args.threads, "load_avg_1min": os.getloadavg()[0], "rows": rows,
                "all_checks_ok": all(r["max_diff_rel"] < 1e-5 for r in rows)}
        print(f"wrote {_common.write_json(out, data)}")
    return rows


if __name__ == "__main__":
    main()
