"""SpikeGPT speed: training tokens/s, and generation per token, recurrent vs parallel recompute.

    python benchmarks/bench_spikegpt.py            # demo preset, context 512, JSON to benchmarks/results/
    python benchmarks/bench_spikegpt.py --quick    # a tiny model: a smoke run

Generation at position t can either re-run the parallel model over the last `context` tokens
(what a model without a recurrent form must do) or take one recurrent `step` with a state of
constant size. Both produce the same logits (tests/models/test_spikegpt.py); here we time them and
count the bytes each allocates per generated token (every op's outputs, counted at the dispatcher).
WKV operator timings are in bench_wkv.py.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import _common
import spikeattn as sa


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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="spikegpt-demo")
    p.add_argument("--context", type=int, default=512, help="generation position / parallel context")
    p.add_argument("--train-block", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="benchmarks/results/spikegpt_cpu.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = dict(n_layers=2, dim=32) if args.quick else {}
    if args.quick:
        args.context, args.train_block, args.batch, args.repeats = 32, 16, 2, 2
    model = sa.models.spikegpt(args.preset, vocab_size=96, context=max(args.context, args.train_block), **overrides)

    # Training: forward + backward of a [batch, block] window.
    idx = torch.randint(0, 96, (args.batch, args.train_block))

    def train_step():
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()

    train = _common.summarize(_common.time_cpu(train_step, 1, args.repeats))
    train["tokens_per_s"] = args.batch * args.train_block / (train["median_ms"] / 1e3)

    # Generation of the token after `context` tokens of history, batch 1, no grad.
    model.eval()
    history = torch.randint(0, 96, (1, args.context))
    with torch.no_grad():
        state = None
        for t in range(args.context):
            _, state = model.step(history[:, t], state)
        token = history[:, -1]
        recurrent = _common.summarize(_common.time_cpu(lambda: model.step(token, state), 3, 20 * args.repeats))
        parallel = _common.summarize(_common.time_cpu(lambda: model(history), 1, args.repeats))
        recurrent["bytes_allocated"] = allocated(lambda: model.step(token, state))
        parallel["bytes_allocated"] = allocated(lambda: model(history))
    state_bytes = sum(t.numel() * t.element_size() for block in state for t in block if isinstance(t, torch.Tensor))

    result = {
        "benchmark": "spikegpt_cpu", **_common.environment(("torch",)), "command": "benchmarks/bench_spikegpt.py",
        "preset": args.preset, "overrides": overrides, "threads": args.threads, "quick": args.quick,
        "params": sum(p.numel() for p in model.parameters()),
        "train": {"batch": args.batch, "block": args.train_block, **train},
        "generation": {
            "context": args.context, "recurrent_step": recurrent, "parallel_recompute": parallel,
            "recurrent_state_bytes": state_bytes,
            "speedup_recurrent_vs_parallel": parallel["median_ms"] / recurrent["median_ms"],
        },
    }
    rows = [
        {"what": f"train fwd+bwd [{args.batch}x{args.train_block}]", "ms": train["median_ms"],
         "extra": f"{train['tokens_per_s']:.0f} tokens/s"},
        {"what": f"generate 1 token, recurrent step (pos {args.context})", "ms": recurrent["median_ms"],
         "extra": f"{recurrent['bytes_allocated'] / 1e3:.1f} kB allocated, state {state_bytes / 1e3:.1f} kB"},
        {"what": f"generate 1 token, parallel over {args.context}", "ms": parallel["median_ms"],
         "extra": f"{parallel['bytes_allocated'] / 1e6:.1f} MB allocated"},
    ]
    print(_common.table(rows, [("case", "what", "s"), ("median ms", "ms", ".3f"), ("", "extra", "s")]))
    print(f"recurrent generation is {result['generation']['speedup_recurrent_vs_parallel']:.1f}x faster per token "
          f"than re-running the parallel model at context {args.context}")
    print(f"wrote {_common.write_json(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
