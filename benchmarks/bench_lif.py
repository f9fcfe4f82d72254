"""Multi-step LIF forward+backward: spikeattn against spikingjelly 2.0 and snntorch 1.0.

CPU (default): shapes [8,32,65536] and [4,64,4096], fp32, 2 threads; spikeattn 'torch' and 'cpu'
backends, spikingjelly ``LIFNode(step_mode='m')``, snntorch ``Leaky`` looped over T. Reports the
median and min time of fwd+bwd, the bytes autograd saves for backward per neuron-step, and checks
that the libraries computing the same neuron agree (spikes equal, input gradients within 1e-5).
``--device cuda``: see ``_lif_cuda.py``.

    .venv/bin/python benchmarks/bench_lif.py                 # -> benchmarks/results/lif_cpu.json
    .venv/bin/python benchmarks/bench_lif.py --quick --out /tmp/lif.json
    .venv/bin/python benchmarks/bench_lif.py --device cuda   # -> benchmarks/results/lif_cuda_<gpu>.json
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

import torch

import _common
import _lif_libs as libs

RESULTS = Path(__file__).resolve().parent / "results"
CPU_SHAPES = ((8, 32, 65536), (4, 64, 4096))
QUICK_SHAPES = ((4, 2, 300), (3, 5, 17))
PACKAGES = ("torch", "spikeattn", "spikingjelly", "snntorch", "cupy-cuda12x", "triton")

COLUMNS = [
    ("library", "library", ""), ("detach_reset", "detach_reset", ""), ("shape", "shape_str", ""),
    ("median ms", "median_ms", ".2f"), ("min ms", "min_ms", ".2f"), ("speedup vs sj", "speedup_vs_spikingjelly", ".2f"),
    ("saved B/neuron-step", "saved_bytes_per_neuron_step", ".2f"), ("saved vs sj", "saved_ratio_vs_spikingjelly", ".2f"),
]


def cpu_runners(detach_reset: bool) -> list[libs.Runner]:
    """Reference first: spikeattn torch, then the fast paths compared against it."""
    runners = [libs.spikeattn_lif("torch", detach_reset), libs.spikeattn_lif("cpu", detach_reset)]
    if libs.missing("spikingjelly") is None:
        runners.append(libs.spikingjelly_node(detach_reset))
    # snntorch's reset is always detached, so its one row sits with the detach_reset=True rows.
    if detach_reset and libs.missing("snntorch") is None:
        runners.append(libs.snntorch_leaky(torch.device("cpu")))
    return runners


def run_cpu(args) -> dict:
    torch.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else CPU_SHAPES
    notes = [n for n in (libs.missing("spikingjelly"), libs.missing("snntorch")) if n]
    notes.append("snntorch row: Leaky(beta=0.5, spike_grad=atan()) looped over T, its users' code; a different "
                 "neuron (no input decay, subtract reset, reset always detached), so timed but not compared")
    rows, checks = [], []
    for i, shape in enumerate(shapes):
        x, w = libs.make_inputs(shape, "cpu", torch.float32, seed=i)
        for detach_reset in (False, True):
            ref = None
            for runner in cpu_runners(detach_reset):
                row, out = libs.measure(runner, x, w, _common.time_cpu, args.warmup, args.repeats)
                row.update(shape=list(shape), shape_str="x".join(map(str, shape)), detach_reset=detach_reset)
                if runner.library == "snntorch":
                    row["detach_reset"] = "always"
                    checks.append({"check": f"snntorch {row['shape_str']}: spikes binary, grad finite",
                                   "ok": bool(((out[0] == 0) | (out[0] == 1)).all() and torch.isfinite(out[1]).all())})
                elif ref is None:
                    ref = out
                else:
                    checks.append(libs.agreement(f"{runner.library} vs spikeattn torch, {row['shape_str']}, "
                                            f"detach_reset={detach_reset}", ref, out))
                rows.append(row)
                print(f"  {row['library']:<14} {row['shape_str']:<12} detach_reset={row['detach_reset']!s:<6} "
                      f"median {row['median_ms']:.2f} ms", file=sys.stderr)
                del out
                gc.collect()
    # snntorch ("always" detached) is compared with spikingjelly's detach_reset=True row.
    libs.add_ratios(rows, lambda r: (r["shape_str"], r["detach_reset"] in (True, "always")))
    return {"rows": rows, "checks": checks, "notes": notes, "shapes": [list(s) for s in shapes],
            "threads": args.threads, "dtype": "float32"}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU mode)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per row (default 2 CPU, 5 CUDA)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 10 CPU, 20 CUDA)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 1 warm-up, 2 repeats: a smoke run")
    p.add_argument("--sj-impl", choices=("auto", "cuda", "triton", "torch"), default="auto",
                   help="spikingjelly's CUDA implementation (sets SJ_LIF_CUDA_IMPLEMENTATION; CUDA mode)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/lif_<device>.json)")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if args.warmup is None:
        args.warmup = 1 if args.quick else (5 if cuda else 2)
    if args.repeats is None:
        args.repeats = 2 if args.quick else (20 if cuda else 10)
    if args.threads < 1 or args.warmup < 0 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1, --warmup >= 0")
    return args


def main(argv=None) -> int:
    """Run the benchmark, print the table, write the JSON; exit status 1 if an agreement check failed."""
    args = parse_args(argv)
    load_start = os.getloadavg()[0]  # other users of a shared machine show up here, and in the timings
    if args.device == "cuda":
        import _lif_cuda

        result = _lif_cuda.run(args)
        default_out = RESULTS / f"lif_cuda_{_lif_cuda.device_slug()}.json"
        columns = _lif_cuda.COLUMNS
    else:
        result = run_cpu(args)
        default_out = RESULTS / "lif_cpu.json"
        columns = COLUMNS
    result = {"benchmark": "lif_fwd_bwd", "device": args.device, **_common.environment(PACKAGES),
              "load_average_1m": {"start": load_start, "end": os.getloadavg()[0]},
              "warmup": args.warmup, "repeats": args.repeats, "quick": args.quick,
              "neuron": {"tau": libs.TAU, "v_th": libs.V_TH, "v_reset": libs.V_RESET, "decay_input": True,
                         "surrogate": f"ATan(alpha={libs.ALPHA})"},
              "command": " ".join(["benchmarks/bench_lif.py", *(sys.argv[1:] if argv is None else argv)]),
              **result}
    result["all_checks_ok"] = all(c["ok"] for c in result["checks"])
    print(_common.table(result["rows"], columns))
    for c in result["checks"]:
        print(f"[{'ok' if c['ok'] else 'FAIL'}] {c['check']}")
    for n in result["notes"]:
        print(f"note: {n}")
    path = _common.write_json(args.out or default_out, result)
    print(f"wrote {path}")
    return 0 if result["all_checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
