"""Whole models on the CPU: Spikformer-4-384 vs spikingjelly 2.0's Spikformer, and SpikeGPT's speed.

Spikformer (CIFAR-10 shape 3x32x32, T=4, batch 8): spikeattn's ``spikformer("spikformer-4-384")``
against spikingjelly's ``spikformer_cifar10()`` (both 9.31M parameters, spikingjelly's weights
copied into ours), in one process, interleaved (each repeat runs every case once, so both libraries
see the same machine load), at each thread count. Per case: wall-clock and CPU time (all threads,
``process_time``) of a training step (forward, cross-entropy, backward) and of inference (eval mode,
no_grad); activation memory (bytes autograd saves in a training step, the activations it holds at its
peak; the peak of live op outputs in inference); and a per-stage breakdown (stem, attention, MLP,
head: each stage timed alone on the input it gets inside the model); and, from one profiled step, the
time in dense GEMMs and convolutions against BatchNorm and the rest (``_op_time.py``): our dense time
bounds the speed-up any exact change outside the GEMMs can reach.

spikingjelly 2.0 pools its stem *before* the LIF where Spikformer's code (and ours) pools after it,
so the stems' spikes differ; the encoder and head are the same maths: fed the same tokens they are
compared value by value. spikingjelly's Spike-driven Transformer is not compared: see
``SDT_NOTE``.

SpikeGPT (demo and 45m presets): training tokens/s and generation ms/token (one recurrent step) of the
model as built and, interleaved in the same run, with ``spikeattn.ops.linear.autograd.Linear`` swapped in
for its ``nn.Linear`` layers (GEMMs through ``spikeattn.ops.linear``: oneDNN where it pays off, else
torch's; the blocks' fused cores then stay off, as they need plain ``nn.Linear`` layers).

    python benchmarks/bench_models.py               # writes benchmarks/results/models_cpu.json
    python benchmarks/bench_models.py --quick       # tiny models, a smoke test

The glibc allocator is told to keep freed memory (REFERENCE §1: otherwise every large tensor is
page-faulted in again on each step); ``--malloc default`` leaves it alone. The setting and the load
average are recorded: the CPU is shared.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import _common
import _model_stages
import _op_time
import spikeattn as sa

RESULTS = Path(__file__).resolve().parent / "results" / "models_cpu.json"
SDT_NOTE = ("spikingjelly 2.0's SpikeDrivenTransformer, built at this size (embed_dims=384, num_heads=12, "
            "depths=4, pooling_stat='0011': 9,320,842 parameters), is not the same network as "
            "sa.models.spikformer('spikformer-4-384', attention='sdsa') (9,310,906): it uses membrane "
            "shortcuts (a LIF before every conv, residuals adding real-valued membranes), convs with biases "
            "and a LIF before the head, where ours keeps Spikformer's spike shortcuts; weights cannot be "
            "copied nor outputs compared, so it is not timed here")
MALLOC = {"keep": "mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1): freed memory stays in the heap",
          "default": "glibc defaults (large tensors are fresh mmaps)"}


def set_malloc(mode: str) -> str:
    """Apply the allocator setting (glibc only) and return its description."""
    if mode == "keep":
        libc = ctypes.CDLL("libc.so.6")
        # mallopt's value is a C int: 1 << 40 (the earlier setting) wrapped to 0, "trim at every free"
        for param, value, name in ((-4, 0, "M_MMAP_MAX"), (-1, 2**31 - 1, "M_TRIM_THRESHOLD")):
            if libc.mallopt(param, value) != 1:
                raise OSError(f"mallopt({name}, {value}) failed")
    return MALLOC[mode]


def spikformer_pair(quick: bool):
    """(ours, spikingjelly's, reset_sj) with spikingjelly's weights in ours; BN shifts give firing."""
    try:
        from spikingjelly.activation_based import functional
        from spikingjelly.activation_based.model.spikformer import Spikformer as SJSpikformer
    except ImportError as e:  # its model package imports h5py
        raise SystemExit(f"spikingjelly 2.0 with its runtime deps is needed for this benchmark: {e}") from e
    cfg = dict(depth=1, dim=64, heads=4, T=2) if quick else {}
    ours = sa.models.spikformer("spikformer-4-384", **cfg)
    c = ours.config
    theirs = SJSpikformer(T=c.T, in_channels=3, img_size_h=32, img_size_w=32, patch_size=4, num_classes=10,
                          embed_dims=c.dim, num_heads=c.heads, mlp_ratio=c.mlp_ratio, depths=c.depth)
    for m in theirs.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            # at init (shift 0) the attention LIF stays silent; a shift of 1 gives trained-like rates
            torch.nn.init.constant_(m.bias, 1.0)
    src, dst = theirs.state_dict(), ours.state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"state dicts differ: {len(src)} vs {len(dst)} entries")
    ours.load_state_dict({k: v.reshape(dst[k].shape) for k, v in zip(dst, src.values())})
    return ours, theirs, functional.reset_net


def _peak_live_bytes(fn) -> int:
    """Peak of the bytes held by op outputs that are still alive (a TorchDispatchMode + weakrefs).

    Counts each new output once by its storage; a view that outlives its base is not counted again
    (an underestimate of at most such views).
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode

    class Live(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live, self.peak, self.seen = 0, 0, set()

        def _drop(self, ptr, n):
            self.live -= n
            self.seen.discard(ptr)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes():
                    ptr = t.untyped_storage().data_ptr()
                    if ptr not in self.seen:
                        n = t.untyped_storage().nbytes()
                        self.seen.add(ptr)
                        self.live += n
                        weakref.finalize(t, self._drop, ptr, n)
            self.peak = max(self.peak, self.live)
            return out

    with Live() as mode:
        fn()
    return mode.peak


def spikformer_cases(ours, theirs, reset_sj, x, labels):
    """{case: {lib: callable}} for training steps and eval-mode inference."""
    def train(model, reset, out_fn):
        def step():
            reset(model)
            model.train()
            model.zero_grad(set_to_none=True)
            F.cross_entropy(out_fn(model(x)), labels).backward()
        return step

    def infer(model, reset):
        def run():
            reset(model)
            model.eval()
            with torch.no_grad():
                model(x)
        return run

    mean_t = lambda out: out.mean(0)  # spikingjelly's head returns [T, B, classes]
    return {"train_step": {"spikeattn": train(ours, sa.reset, lambda o: o), "spikingjelly": train(theirs, reset_sj, mean_t)},
            "inference": {"spikeattn": infer(ours, sa.reset), "spikingjelly": infer(theirs, reset_sj)}}


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return 1e3 * (time.perf_counter() - wall), 1e3 * (time.process_time() - cpu)


def interleaved(cases: dict, warmup: int, repeats: int) -> dict:
    """Every callable once per round, round after round; medians of wall and CPU ms."""
    wall = {k: {lib: [] for lib in libs} for k, libs in cases.items()}
    cpu = {k: {lib: [] for lib in libs} for k, libs in cases.items()}
    for i in range(warmup + repeats):
        for k, libs in cases.items():
            for lib, fn in libs.items():
                w, c = timed(fn)
                if i >= warmup:
                    wall[k][lib].append(w)
                    cpu[k][lib].append(c)
    out = {}
    for k, libs in cases.items():
        row = {lib: {**_common.summarize(wall[k][lib]), "ms_all": [round(v, 1) for v in wall[k][lib]],
                     "cpu_ms_median": statistics.median(cpu[k][lib])} for lib in libs}
        a, b = list(libs)
        row["speedup"] = row[b]["median_ms"] / row[a]["median_ms"]
        row["speedup_cpu_time"] = row[b]["cpu_ms_median"] / row[a]["cpu_ms_median"]
        out[k] = row
    return out


def run_spikformer(args, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ours, theirs, reset_sj = spikformer_pair(args.quick)
    x = torch.rand(args.batch, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch,))
    cases = spikformer_cases(ours, theirs, reset_sj, x, labels)
    result = interleaved(cases, args.warmup, args.repeats)
    # dense GEMM/conv vs other time, and the bound our dense time sets against their measured step
    result["op_time"] = _op_time.dense_floor(cases, {k: result[k]["spikingjelly"]["median_ms"] for k in cases})
    for lib, model, reset in (("spikeattn", ours, sa.reset), ("spikingjelly", theirs, reset_sj)):
        reset(model)
        model.train()
        out, saved = _common.saved_bytes(lambda: model(x))
        del out
        reset(model)
        model.eval()
        with torch.no_grad():
            peak = _peak_live_bytes(lambda: model(x))
        result["train_step"][lib]["saved_mib"] = saved / 2**20
        result["inference"][lib]["peak_live_mib"] = peak / 2**20
        result["train_step"][lib]["params"] = sum(p.numel() for p in model.parameters())
    result["stages"] = _model_stages.breakdown(ours, theirs, reset_sj, x, args.warmup, args.stage_repeats)
    result["agreement"] = _model_stages.agreement(ours, theirs, reset_sj, x)
    return result


def run_spikegpt(args, threads: int) -> dict:
    """Training tokens/s and recurrent generation ms/token: the model as built against the same model with
    ``ops.linear.autograd.Linear`` swapped in for its ``nn.Linear`` layers (their GEMMs through ``ops.linear``,
    oneDNN where it pays off; the blocks' fused cores need plain ``nn.Linear`` layers, so they are off
    there), interleaved."""
    from spikeattn.ops.linear import resolve_backend
    from spikeattn.ops.linear.autograd import Linear

    torch.set_num_threads(threads)
    out = {}
    for preset, batch in args.gpt_presets:
        torch.manual_seed(0)
        overrides = dict(n_layers=2, dim=32) if args.quick else {}
        model = sa.models.spikegpt(preset, vocab_size=96, **overrides)
        block = 16 if args.quick else 128
        idx = torch.randint(0, 96, (batch, block))

        def use(cls):
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    m.__class__ = cls

        def train():
            model.train()
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()

        model.eval()
        with torch.no_grad():
            _, state = model.step(idx[:1, 0], None)
        token = idx[:1, 1]

        def generate():
            model.eval()
            with torch.no_grad():
                model.step(token, state)

        # speedup: the swapped-in model's time over the model's as built
        paths = {"as_built": lambda f: (use(torch.nn.Linear), f()), "linear_autograd": lambda f: (use(Linear), f())}
        cases = {"train": {k: (lambda p=p: p(train)) for k, p in paths.items()},
                 "generate": {k: (lambda p=p: p(generate)) for k, p in paths.items()}}
        rows = interleaved(cases, args.warmup, args.repeats)
        use(torch.nn.Linear)
        dim = model.config.dim
        with torch.no_grad():  # what the swapped-in layers' GEMMs ran on, on this CPU
            rows["linear_autograd_backend"] = resolve_backend("auto", torch.ones(batch * block, dim), torch.ones(dim, dim))
        for path in paths:
            rows["train"][path]["tokens_per_s"] = batch * block / (rows["train"][path]["median_ms"] / 1e3)
            rows["train"][path]["tokens_per_s_cpu_time"] = batch * block / (rows["train"][path]["cpu_ms_median"] / 1e3)
        out[preset] = {"batch": batch, "block": block, "params": sum(p.numel() for p in model.parameters()), **rows}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--stage-repeats", type=int, default=3, help="repeats of the per-stage breakdown")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    p.add_argument("--malloc", choices=tuple(MALLOC), default="keep")
    p.add_argument("--skip", choices=("spikformer", "spikegpt"), action="append", default=[])
    p.add_argument("--quick", action="store_true", help="tiny models, 1 repeat (smoke test)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON path (default {RESULTS}; --quick: none)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.stage_repeats, args.warmup = 2, 1, 1, 0
    args.gpt_presets = [("spikegpt-demo", 2 if args.quick else 16), ("spikegpt-45m", 2 if args.quick else 4)]
    threads = [int(n) for n in str(args.threads).split(",")]
    allocator = set_malloc(args.malloc)
    load = [os.getloadavg()[0]]
    report = {"benchmark": "whole models on CPU: spikeattn vs spikingjelly 2.0 (same process, interleaved)",
              **_common.environment(("torch", "spikingjelly")), "command": "benchmarks/bench_models.py",
              "threads": threads, "allocator": allocator, "batch": args.batch, "repeats": args.repeats,
              "stage_repeats": args.stage_repeats,
              "quick": args.quick, "spike_driven_transformer": SDT_NOTE, "spikformer": {}, "spikegpt": {}}
    for n in threads:
        if "spikformer" not in args.skip:
            report["spikformer"][str(n)] = run_spikformer(args, n)
        if "spikegpt" not in args.skip:
            report["spikegpt"][str(n)] = run_spikegpt(args, n)
        load.append(os.getloadavg()[0])
    report["load_avg_1min"] = load  # before, and after each thread count: others' work inflates times
    print(_model_stages.table(report))
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        # the earlier records, newest first: their speed-ups, loads and dates
        print(f"wrote {_common.write_json(out, _common.with_previous_runs(out, report, _summary))}")
    return report


def _summary(record: dict) -> dict:
    """An earlier record's date, load and per-thread Spikformer medians and speed-ups (its stages and op times dropped)."""
    if "spikformer" not in record:  # already a summary
        return record
    keep = {k: record[k] for k in ("date", "cpu_model", "cpu_vector_isa", "load_avg_1min", "repeats") if k in record}
    for n, row in record["spikformer"].items():
        keep[n] = {case: {"ours_ms": row[case]["spikeattn"]["median_ms"], "theirs_ms": row[case]["spikingjelly"]["median_ms"],
                          "speedup": row[case]["speedup"]} for case in ("train_step", "inference")}
    return keep


if __name__ == "__main__":
    main()
