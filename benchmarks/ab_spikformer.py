"""Spikformer-4-384 training step (or inference), this checkout against a baseline git revision, interleaved.

    python benchmarks/ab_spikformer.py --baseline main~3 --threads 2     # prints the comparison (JSON: --out)

The package of ``--baseline`` is extracted with ``git archive`` (``bench_spikegpt.extract``) and two worker
processes, one importing each package, build the same model (same seed: the same weights, BN shifts of 1 as
``bench_models.py``) on the same batch (8 CIFAR-shape images, T=4). The parent alternates them step by step,
swapping who goes first every round, so a shared machine's load hits both alike. Reported: medians, minima and
lower quartiles of the wall times, the median of the per-round ratios, and whether the two packages give the
same logits, gradients and BatchNorm buffers after one more step (bit for bit, or the largest gradient
difference relative to each parameter's largest gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_models import MALLOC, set_malloc
from bench_spikegpt import ROOT, extract


def worker(args) -> None:
    """Builds the model from whichever ``spikeattn`` is on the path; answers ``run`` (ms) and ``facts PATH``."""
    import spikeattn as sa

    set_malloc(args.malloc)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = sa.models.spikformer("spikformer-4-384")
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.constant_(m.bias, 1.0)  # trained-like firing (bench_models.py)
    x, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))

    def train():
        model.train()
        model.zero_grad(set_to_none=True)
        out = model(x)
        torch.nn.functional.cross_entropy(out, labels).backward()
        return out

    def infer():
        model.eval()
        with torch.no_grad():
            return model(x)

    fn = infer if args.inference else train
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "run":
            wall = time.perf_counter()
            fn()
            print(json.dumps(1e3 * (time.perf_counter() - wall)), flush=True)
        elif cmd == "facts":
            out = fn()
            grads = [] if args.inference else [p.grad for p in model.parameters()]
            torch.save({"out": out, "grads": grads, "buffers": list(model.buffers())}, rest[0])
            print(json.dumps(sa.__file__), flush=True)
        else:
            break


def agreement(old: dict, new: dict) -> dict:
    rel = [((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item() for a, b in zip(old["grads"], new["grads"])]
    return {"outputs_equal": torch.equal(old["out"], new["out"]),
            "buffers_equal": all(torch.equal(a, b) for a, b in zip(old["buffers"], new["buffers"])),
            "grads_equal": all(torch.equal(a, b) for a, b in zip(old["grads"], new["grads"])),
            "grads_max_rel_diff": max(rel, default=0.0)}


def summary(times: dict) -> dict:
    q = lambda v, f: sorted(v)[int(f * (len(v) - 1))]
    a, b = times["baseline"], times["current"]
    out = {name: {"median_ms": statistics.median(t), "min_ms": min(t), "p25_ms": q(t, 0.25),
                  "ms_all": [round(v, 1) for v in t]} for name, t in times.items()}
    for stat in ("median_ms", "min_ms", "p25_ms"):
        out[f"speedup_{stat[:-3]}"] = out["baseline"][stat] / out["current"][stat]
    out["speedup_paired_median"] = statistics.median(x / y for x, y in zip(a, b))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="main", help="git revision to compare this checkout against")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--inference", action="store_true", help="eval-mode inference instead of a training step")
    p.add_argument("--malloc", choices=tuple(MALLOC), default="keep")
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    argv_worker = ["--worker", "--threads", str(args.threads), "--malloc", args.malloc]
    argv_worker += ["--inference"] if args.inference else []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "baseline").mkdir()
        baseline = extract(args.baseline, tmp / "baseline")
        roots = {"baseline": tmp / "baseline", "current": ROOT}
        load = os.getloadavg()[0]
        def env(root):
            return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}

        workers = {name: subprocess.Popen([sys.executable, __file__, *argv_worker], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True, cwd=root, env=env(root))
                   for name, root in roots.items()}

        def ask(name, cmd):
            w = workers[name]
            w.stdin.write(cmd + "\n")
            w.stdin.flush()
            line = w.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {name} exited with {w.wait()}")
            return json.loads(line)

        try:
            times = {name: [] for name in workers}
            for i in range(args.warmup + args.repeats):
                for name in (list(workers) if i % 2 else list(workers)[::-1]):
                    ms = ask(name, "run")
                    if i >= args.warmup:
                        times[name].append(ms)
            packages = {name: ask(name, f"facts {tmp / name}.pt") for name in workers}
        finally:
            for w in workers.values():
                w.stdin.close()
                w.wait(timeout=60)
        result = {"case": "inference" if args.inference else "train_step", "threads": args.threads,
                  "baseline_rev": baseline, "packages": packages, "malloc": MALLOC[args.malloc],
                  "load_1min": [load, os.getloadavg()[0]], **summary(times),
                  "agreement": agreement(*(torch.load(tmp / f"{name}.pt") for name in ("baseline", "current")))}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
