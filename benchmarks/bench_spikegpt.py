"""SpikeGPT speed: training tokens/s and generation per token, this code against a baseline commit.

    python benchmarks/bench_spikegpt.py            # demo preset, JSON to benchmarks/results/spikegpt_cpu.json
    python benchmarks/bench_spikegpt.py --quick    # a tiny model: a smoke run
    python benchmarks/bench_spikegpt.py --baseline none   # this code only

Old against new, honestly: the package of ``--baseline`` (a git revision, default ``BASELINE``, the code
before the fused WKV/token-mix work) is extracted with ``git archive`` into a temporary folder, and two
worker processes, one importing each package (``PYTHONPATH``), build the same model (same seed, same
weights) and time the same steps. The parent alternates them step by step (swapping which goes first
each round), so the load of a shared machine hits both alike; the ratio of their medians is the speed-up.
Both write their logits (and LIF spikes) on one batch, and the parent compares them.

Cases: a training step (forward + cross-entropy + backward of a [batch, block] window), one recurrent
generation step after ``context`` tokens (batch 1, no grad), and re-running the parallel model over those
``context`` tokens instead (what a model without a recurrent form does per token; bytes allocated per
token counted at the dispatcher for both).
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
from torch.utils._python_dispatch import TorchDispatchMode

import _common
from bench_models import MALLOC, set_malloc

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "a7717e9778d0b149e76616d7e06e5f9a5d1906be"  # main before the fused WKV / token mix (issue 18)
CASES = ("train", "step", "parallel")


class AllocatedBytes(TorchDispatchMode):
    """Sum of the sizes of the new tensors ops return (views of their inputs excluded)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = [*args, *(kwargs or {}).values()]
        inputs = {a.untyped_storage().data_ptr() for a in flat if isinstance(a, torch.Tensor)}
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.bytes += t.numel() * t.element_size()
        return out


def allocated(fn) -> int:
    with AllocatedBytes() as counter:
        fn()
    return counter.bytes


def worker(args) -> None:
    """Runs in a subprocess: builds the model from whichever ``spikeattn`` is on the path, then answers
    one JSON line per command read from stdin (a case name: its time in ms; ``facts PATH``)."""
    import spikeattn as sa

    set_malloc(args.malloc)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = sa.models.spikegpt(args.preset, vocab_size=96, context=max(args.context, args.train_block),
                               **args.overrides)
    idx = torch.randint(0, 96, (args.batch, args.train_block))
    history = torch.randint(0, 96, (1, args.context))

    def train():
        model.train()
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()

    model.eval()
    with torch.no_grad():
        state = None
        for t in range(args.context):
            _, state = model.step(history[:, t], state)
    token = history[:, -1]

    def step():
        model.eval()
        with torch.no_grad():
            model.step(token, state)

    def parallel():
        model.eval()
        with torch.no_grad():
            model(history)

    cases = {"train": train, "step": step, "parallel": parallel}
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd in cases:
            cpu = time.process_time()
            answer = {"ms": _common.time_cpu(cases[cmd], 0, 1)[0], "cpu_ms": 1e3 * (time.process_time() - cpu)}
        elif cmd == "facts":
            answer = facts(model, idx, state, token, history, rest[0], sa)
        else:
            break
        print(json.dumps(answer), flush=True)


def facts(model, idx, state, token, history, path: str, sa) -> dict:
    """Logits and spikes of one eval forward with random weights (written to ``path``: RWKV-4's init
    zeroes the output projections, so no neuron would fire), sizes, bytes allocated per token."""
    with torch.no_grad():
        step_bytes = allocated(lambda: model.step(token, state))
        parallel_bytes = allocated(lambda: model(history))
        torch.manual_seed(1)
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=2 / m.in_features ** 0.5)
    spikes = []
    hooks = [m.register_forward_hook(lambda m, i, o: spikes.append(o)) for m in model.modules()
             if isinstance(m, sa.neuron.LIF)]
    model.eval()
    with torch.no_grad():
        logits = model(idx)
        for h in hooks:
            h.remove()
        torch.save({"logits": logits, "spikes": spikes}, path)
    return {"package": sa.__file__, "params": sum(p.numel() for p in model.parameters()),
            "state_bytes": sum(t.numel() * t.element_size() for t in torch.utils._pytree.tree_leaves(state)),
            "step_bytes_allocated": step_bytes, "parallel_bytes_allocated": parallel_bytes}


class Worker:
    """A worker subprocess with ``root`` (a folder holding ``spikeattn/`` and ``cuda/``) first on its path."""

    def __init__(self, root: Path, argv: list[str]):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=root)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args} exited with {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def extract(rev: str, into: Path) -> str:
    """``spikeattn/``, ``cuda/`` and ``hardware/`` of git revision ``rev`` into ``into``; returns the full hash."""
    full = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", full, "spikeattn", "cuda", "hardware"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return full


def compare(paths: dict) -> dict:
    old, new = (torch.load(paths[k]) for k in ("baseline", "current"))
    diff = (new["logits"] - old["logits"]).abs().max().item()
    return {"logits_max_abs_diff": diff, "logits_max_abs": old["logits"].abs().max().item(),
            "spikes_equal": len(old["spikes"]) == len(new["spikes"])
            and all(torch.equal(a, b) for a, b in zip(old["spikes"], new["spikes"])),
            "spike_count": sum(int(s.sum()) for s in new["spikes"])}


def run_workers(args, argv: list[str], tmp: Path) -> dict:
    roots = {"current": ROOT}
    if args.baseline != "none":
        (tmp / "baseline").mkdir()
        args.baseline = extract(args.baseline, tmp / "baseline")
        roots["baseline"] = tmp / "baseline"
    workers = {name: Worker(root, argv) for name, root in roots.items()}
    try:
        times = {name: {case: [] for case in CASES} for name in workers}
        cpu = {name: {case: [] for case in CASES} for name in workers}  # CPU time: without waits for a core
        order = list(workers)
        for i in range(args.warmup + args.repeats):
            for case in CASES:
                for name in order if i % 2 else order[::-1]:  # swap who goes first every round
                    for _ in range(args.step_calls if case == "step" else 1):
                        answer = workers[name].ask(case)
                        if i >= args.warmup:
                            times[name][case].append(answer["ms"])
                            cpu[name][case].append(answer["cpu_ms"])
        info = {name: w.ask(f"facts {tmp / name}.pt") for name, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    out = {name: {"facts": info[name], **{case: {**_common.summarize(t), "cpu_ms_median": statistics.median(cpu[name][case]),
                                                 **({} if case == "step" else {"ms_all": [round(v, 3) for v in t]})}
                                          for case, t in times[name].items()}} for name in workers}
    if "baseline" in out:
        out["agreement"] = compare({name: tmp / f"{name}.pt" for name in workers})
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="spikegpt-demo")
    p.add_argument("--context", type=int, default=512, help="generation position / parallel context")
    p.add_argument("--train-block", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--step-calls", type=int, default=20, help="recurrent steps timed per round")
    p.add_argument("--malloc", choices=tuple(MALLOC), default="default", help="glibc allocator setting of both workers")
    p.add_argument("--baseline", default=BASELINE, help="git revision to compare with, or 'none'")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "spikegpt_cpu.json"))
    args = p.parse_args(argv)
    args.overrides = dict(n_layers=2, dim=32) if args.quick else {}
    if args.quick:
        args.context, args.train_block, args.batch, args.repeats, args.step_calls = 32, 16, 2, 2, 2
    if args.worker:
        return worker(args)
    worker_argv = [f"--preset={args.preset}", f"--context={args.context}", f"--train-block={args.train_block}",
                   f"--batch={args.batch}", f"--threads={args.threads}", f"--malloc={args.malloc}"] + (["--quick"] if args.quick else [])
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_workers(args, worker_argv, Path(tmp))
    load.append(os.getloadavg()[0])
    tokens = args.batch * args.train_block
    for run in (r for name, r in runs.items() if name != "agreement"):
        run["train"]["tokens_per_s"] = tokens / (run["train"]["median_ms"] / 1e3)
        run["speedup_recurrent_vs_parallel"] = run["parallel"]["median_ms"] / run["step"]["median_ms"]
    result = {
        "benchmark": "spikegpt_cpu", **_common.environment(("torch",)), "command": "benchmarks/bench_spikegpt.py",
        "method": "two worker processes (this checkout; the baseline commit via git archive) with the same model "
                  "and seed, timed alternately step by step; medians",
        "allocator": MALLOC[args.malloc],
        "preset": args.preset, "overrides": args.overrides, "threads": args.threads, "quick": args.quick,
        "batch": args.batch, "block": args.train_block, "context": args.context, "baseline_commit": args.baseline,
        "load_avg_1min": load, **runs,
    }
    rows = []
    for name in (n for n in ("baseline", "current") if n in runs):
        r = runs[name]
        rows += [{"code": name, "case": f"train fwd+bwd [{args.batch}x{args.train_block}]", "ms": r["train"]["median_ms"],
                  "extra": f"{r['train']['tokens_per_s']:.0f} tokens/s"},
                 {"code": name, "case": f"generate 1 token, recurrent (pos {args.context})", "ms": r["step"]["median_ms"],
                  "extra": f"{r['facts']['step_bytes_allocated'] / 1e3:.1f} kB allocated"},
                 {"code": name, "case": f"generate 1 token, parallel over {args.context}", "ms": r["parallel"]["median_ms"],
                  "extra": f"{r['facts']['parallel_bytes_allocated'] / 1e6:.1f} MB allocated"}]
    print(_common.table(rows, [("code", "code", "s"), ("case", "case", "s"), ("median ms", "ms", ".3f"), ("", "extra", "s")]))
    if "baseline" in runs:
        result["speedup_vs_baseline"] = {case: runs["baseline"][case]["median_ms"] / runs["current"][case]["median_ms"]
                                         for case in CASES}
        result["speedup_vs_baseline_cpu_time"] = {
            case: runs["baseline"][case]["cpu_ms_median"] / runs["current"][case]["cpu_ms_median"] for case in CASES}
        for key in ("speedup_vs_baseline", "speedup_vs_baseline_cpu_time"):
            print(key, args.baseline[:10], {k: round(v, 3) for k, v in result[key].items()})
        print("agreement", runs["agreement"])
    out = Path(args.out)
    if out.is_file():  # keep the earlier records (other machines, older code), newest first
        old = json.loads(out.read_text())
        result["previous_runs"] = [{k: v for k, v in old.items() if k != "previous_runs"}, *old.get("previous_runs", [])]
    print(f"wrote {_common.write_json(out, result)}")
    return result


if __name__ == "__main__":
    main()
