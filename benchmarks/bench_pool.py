"""Max-pool of spike maps on the CPU: torch's ``F.max_pool2d`` against the fused ``spikeattn.ops.spike_pool``.

The two pools of Spikformer-4-384's SPS stem at batch 8, T=4 on CIFAR-sized images (MaxPool(3, 2, 1) on
``[T*B, C, H, W]`` = [32, 192, 32, 32] and [32, 384, 16, 16]), fp32 spikes at a 15% firing rate. Per shape
and thread count: inference (no_grad forward), the training forward (autograd recording: torch keeps
int64 indices, the fused op a uint8 cell per output) and its backward, each the median of interleaved
repeats (every repeat runs both libraries, so both see the same machine load); the bytes autograd
saves; and whether outputs and input gradients are bit-identical.

    python benchmarks/bench_pool.py            # writes benchmarks/results/pool_cpu.json
    python benchmarks/bench_pool.py --model    # also the whole Spikformer-4-384 with either pool (~2 min)
    python benchmarks/bench_pool.py --quick    # one small shape, a smoke test

``--model`` times Spikformer-4-384 (batch 8, T=4, BN shifts of 1 for trained-like firing, as in
``bench_models.py``) in eval-mode inference and a training step, interleaved, with the stems' pools on the
fused kernel and on ``F.max_pool2d`` (the op's ``cpu`` backend entry pointed at the torch reference).

The glibc allocator keeps freed memory (``bench_models.set_malloc``), as in the whole-model benchmark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import _common
from bench_models import MALLOC, set_malloc
import spikeattn as sa
from spikeattn.ops import spike_pool as sp
from spikeattn.ops.spike_pool import cpu, spike_pool

RESULTS = Path(__file__).resolve().parent / "results" / "pool_cpu.json"
SHAPES = [(32, 192, 32, 32), (32, 384, 16, 16)]  # [T*B, C, H, W] before SPS stages 2 and 3's pools
POOL = (3, 2, 1)
FIRING = 0.15
IMPLS = {"torch": lambda x: F.max_pool2d(x, *POOL), "fused": lambda x: spike_pool(x, *POOL, backend="cpu")}


def _time(fn, setup=None) -> float:
    if setup is not None:
        setup()
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def measure(shape, warmup: int, repeats: int) -> dict:
    """Median ms of each phase and implementation, interleaved; saved bytes; bit-equality."""
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) < FIRING).float()
    xg = x.clone().requires_grad_(True)
    grad = torch.randn(F.max_pool2d(x, *POOL).shape)
    graphs = {}

    def infer(impl):
        with torch.no_grad():
            IMPLS[impl](x)

    phases = {
        "inference": lambda impl: (lambda: infer(impl), None),
        "train_forward": lambda impl: (lambda: IMPLS[impl](xg), None),
        "backward": lambda impl: (lambda: torch.autograd.grad(graphs[impl], xg, grad),
                                  lambda: graphs.update({impl: IMPLS[impl](xg)})),
    }
    times = {(p, i): [] for p in phases for i in IMPLS}
    for r in range(warmup + repeats):
        for phase, make in phases.items():
            for impl in IMPLS:
                ms = _time(*make(impl))
                if r >= warmup:
                    times[phase, impl].append(ms)
    row = {"shape": list(shape), "firing_rate": FIRING}
    for phase in phases:
        for impl in IMPLS:
            row[f"{phase}_{impl}_ms"] = statistics.median(times[phase, impl])
        row[f"{phase}_speedup"] = row[f"{phase}_torch_ms"] / row[f"{phase}_fused_ms"]
    results = {}
    for impl, fn in IMPLS.items():
        out, saved = _common.saved_bytes(lambda: fn(xg))
        results[impl] = (out.detach(), torch.autograd.grad(out, xg, grad)[0])
        row[f"saved_bytes_{impl}"] = saved
    row["same_output_bits"] = torch.equal(results["torch"][0], results["fused"][0])
    row["same_grad_bits"] = torch.equal(results["torch"][1], results["fused"][1])
    return row


def model_ab(threads: int, warmup: int, repeats: int, quick: bool) -> dict:
    """Median ms of Spikformer-4-384 inference and training step with the fused pool and with torch's."""
    torch.manual_seed(0)
    model = sa.models.spikformer("spikformer-4-384", **(dict(depth=1, dim=64, heads=4, T=2) if quick else {}))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.constant_(m.bias, 1.0)
    x, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    def train():
        model.train()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()

    fused = sp.BACKENDS["cpu"]
    pools = {"fused": fused, "torch": sp.BACKENDS["torch"]}
    times = {(case, pool): [] for case in ("inference", "train_step") for pool in pools}
    try:
        for r in range(warmup + repeats):
            for pool, fn in pools.items():
                sp.BACKENDS["cpu"] = fn
                for case, run in (("inference", infer), ("train_step", train)):
                    ms = _time(run)
                    if r >= warmup:
                        times[case, pool].append(ms)
    finally:
        sp.BACKENDS["cpu"] = fused
    row = {"threads": threads}
    for (case, pool), ts in times.items():
        row[f"{case}_{pool}_pool_ms"] = statistics.median(ts)
    for case in ("inference", "train_step"):
        row[f"{case}_saved_ms"] = row[f"{case}_torch_pool_ms"] - row[f"{case}_fused_pool_ms"]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--malloc", choices=tuple(MALLOC), default="keep")
    p.add_argument("--model", action="store_true", help="also time the whole Spikformer-4-384 with either pool")
    p.add_argument("--model-repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None, help=f"JSON path (default {RESULTS}; --quick: none)")
    args = p.parse_args(argv)
    if not cpu.is_available():
        raise SystemExit("the fused pool's C++ kernel does not build here: nothing to compare")
    allocator = set_malloc(args.malloc)
    load = os.getloadavg()[0]
    shapes = [(4, 8, 12, 12)] if args.quick else SHAPES
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for shape in shapes:
            rows.append({"threads": threads, **measure(shape, args.warmup, args.repeats)})
    model_rows = []
    for threads in args.threads if args.model else ():
        torch.set_num_threads(threads)
        model_rows.append(model_ab(threads, 1, args.model_repeats, args.quick))
    shown = [{**r, "shape": "x".join(map(str, r["shape"]))} for r in rows]
    print(_common.table(shown, [("threads", "threads", "d"), ("shape", "shape", "s")] + [
        (f"{phase} {impl} ms", f"{phase}_{impl}_ms", ".2f") for phase in ("inference", "train_forward", "backward")
        for impl in IMPLS] + [("same bits", "same_grad_bits", "")]))
    if model_rows:
        print(_common.table(model_rows, [("threads", "threads", "d")] + [
            (f"{case} {pool} pool ms", f"{case}_{pool}_pool_ms", ".1f") for case in ("inference", "train_step")
            for pool in ("torch", "fused")]))
    out = args.out or (None if args.quick else RESULTS)
    if out:
        data = {"benchmark": "MaxPool(3, 2, 1) of fp32 spike maps: F.max_pool2d vs spikeattn.ops.spike_pool",
                **_common.environment(("torch",)), "allocator": allocator, "load_avg_1min_before": load,
                "rows": rows, "model": model_rows, "all_same_bits": all(r["same_output_bits"] and r["same_grad_bits"] for r in rows)}
        print(f"wrote {_common.write_json(out, _common.with_previous_runs(out, data))}")
    return rows


if __name__ == "__main__":
    main()
