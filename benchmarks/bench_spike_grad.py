"""Weight gradients of spike-fed layers on the CPU: the gather-sum kernels against torch's dense backward.

Conv2d (``spikeattn.ops.spike_conv``): the four spike-fed Conv3x3 layers of Spikformer-4-384's SPS stem
at batch 8, T=4 (N=32 frames), CIFAR 32x32, at the input densities measured in that benchmark, and a
sweep of densities around the switches (``spike_conv.cpu.route``), each by both routes: the direct
gather-sum kernel and patches through the Linear kernel. Linear
(``spikeattn.ops.spike_linear``): the MLP's fc1/fc2 shapes (M=2048 tokens) around the switch
(``spike_linear.cpu.max_fraction``). Dense = what autograd runs without the ops (a conv's weight-only
``convolution_backward`` on the fp32 input; ``grad_y^T @ x`` for the Linear, MKL or oneDNN as ``ops.linear``
picks). Times are wall medians of interleaved calls; each row also records what ``auto`` would run.

    nice -n 10 python benchmarks/bench_spike_grad.py            # 1 and 2 threads -> results/spike_grad_cpu.json
    python benchmarks/bench_spike_grad.py --quick               # small shapes, a smoke test (no JSON)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from unittest import mock

import torch

import _common
from spikeattn.ops.linear import linear
from spikeattn.ops.spike_conv import cpu as conv_cpu
from spikeattn.ops.spike_conv import spike_conv_grad_weight
from spikeattn.ops.spike_linear import cpu as linear_cpu
from spikeattn.ops.spike_linear import spike_grad_weight

RESULTS = Path(__file__).resolve().parent / "results" / "spike_grad_cpu.json"
# (layer, C_in, C_out, H=W, density in bench_models' Spikformer-4-384 run)
STEM = [("stage1", 48, 96, 32, 0.29), ("stage2", 96, 192, 32, 0.24), ("stage3", 192, 384, 16, 0.83),
        ("rpe", 384, 384, 8, 0.72)]
SWEEP = [("stage2", 96, 192, 32), ("rpe", 384, 384, 8)]
LINEAR = [("fc1", 2048, 384, 1536), ("fc2", 2048, 1536, 384)]  # (layer, M, I, O)


def interleaved(fns: dict, repeats: int) -> dict:
    """Median wall ms of each function, the calls alternating so that load changes hit all alike."""
    times = {name: [] for name in fns}
    for name, fn in fns.items():
        fn()  # warm-up: kernel build, first-touch pages
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def conv_row(layer, c, o, hw, density, repeats, n=32):
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(n, c, hw, hw, generator=gen) < density).to(torch.uint8)
    x32, grad_y, size = x.float(), torch.randn(n, o, hw, hw, generator=gen), [o, c, 3, 3]

    def route(name):  # that route itself, whatever the switches say
        def run():
            with mock.patch.object(conv_cpu, "route", lambda *a: name), \
                    mock.patch.object(linear_cpu, "max_fraction", lambda _: 1.0):
                return spike_conv_grad_weight(grad_y, x, size, 1, 1, backend="cpu")
        return run

    ms = interleaved({"dense": lambda: torch.nn.grad.conv2d_weight(x32, size, grad_y, 1, 1),
                      "gather": route("direct"), "patches": route("patches")}, repeats)
    ref = torch.nn.grad.conv2d_weight(x32.double(), size, grad_y.double(), 1, 1)
    err = lambda got: float((got.double() - ref).abs().max() / ref.abs().max())
    listed = conv_cpu.plan(x)[2]
    return {"op": "conv2d", "layer": layer, "shape": f"[{n},{c},{hw},{hw}] -> {o}", "density": density,
            "listed": round(listed, 3), "dense_ms": ms["dense"], "gather_ms": ms["gather"],
            "speedup": ms["dense"] / ms["gather"], "patches_ms": ms["patches"],
            "patches_speedup": ms["dense"] / ms["patches"],
            "auto_runs": conv_cpu.route(listed, o, n * hw * hw * 9 * c),
            "max_err_rel": max(err(route("direct")()), err(route("patches")()))}


def linear_row(layer, m, i, o, density, repeats):
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(m, i, generator=gen) < density).to(torch.uint8)
    x32, grad_y = x.float(), torch.randn(m, o, generator=gen)
    with mock.patch.object(linear_cpu, "max_fraction", lambda _: 1.0):
        ms = interleaved({"dense": lambda: linear(grad_y.T, x32.T),
                          "gather": lambda: spike_grad_weight(grad_y, x, backend="cpu")}, repeats)
        got = spike_grad_weight(grad_y, x, backend="cpu")
    ref = grad_y.double().T @ x.double()
    return {"op": "linear", "layer": layer, "shape": f"[{m},{i}] -> {o}", "density": density, "listed": density,
            "dense_ms": ms["dense"], "gather_ms": ms["gather"], "speedup": ms["dense"] / ms["gather"],
            "auto_runs": "gather" if density <= linear_cpu.max_fraction(i) else "dense",
            "max_err_rel": float((got.double() - ref).abs().max() / ref.abs().max())}


def run(threads: int, args) -> list[dict]:
    torch.set_num_threads(threads)
    if args.quick:
        rows = [conv_row("small", 8, 32, 8, 0.25, 2, n=4), linear_row("small", 256, 64, 128, 0.2, 2)]
    else:
        rows = [conv_row(*s, args.repeats) for s in STEM]
        rows += [conv_row(name, c, o, hw, d, args.repeats) for name, c, o, hw in SWEEP for d in (0.05, 0.2, 0.3, 0.5)]
        rows += [linear_row(*s, d, args.repeats) for s in LINEAR for d in (0.1, 0.2, 0.25, 0.3)]
    for r in rows:
        r["threads"] = threads
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None, help=f"JSON path (default {RESULTS}; --quick: none)")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = [row for t in args.threads for row in run(t, args)]
    print(_common.table(rows, [("op", "op", "s"), ("layer", "layer", "s"), ("shape", "shape", "s"),
                               ("threads", "threads", "d"), ("density", "density", ".2f"), ("listed", "listed", ".2f"),
                               ("dense ms", "dense_ms", ".1f"), ("gather ms", "gather_ms", ".1f"),
                               ("speed-up", "speedup", ".2f"),
                               ("patches ms", "patches_ms", ".1f"), ("patches x", "patches_speedup", ".2f"),
                               ("auto", "auto_runs", "s")]))
    out = args.out or (None if args.quick else RESULTS)
    if out:
        data = {"benchmark": "spike-fed weight gradients: gather-sum kernels vs dense backward",
                **_common.environment(("torch",)), "load_avg_1min": [load_before, os.getloadavg()[0]],
                "conv_max_fraction": conv_cpu.max_fraction(), "rows": rows,
                "all_checks_ok": all(r["max_err_rel"] < 1e-5 for r in rows)}
        print(f"wrote {_common.write_json(out, data)}")
    return rows


if __name__ == "__main__":
    main()
