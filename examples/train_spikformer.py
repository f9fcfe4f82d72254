"""Train a small Spikformer on Fashion-MNIST on the CPU, top to bottom.

    python examples/train_spikformer.py                          # 2 epochs: ~2 min on one core here, ~8.5 on the previous machine
    python examples/train_spikformer.py --set T=4 pool_stages=1,2 --max-minutes 30
    python examples/train_spikformer.py --quick                  # a few hundred images (CI)

Results go to runs/spikformer/: model.pt (config + weights: `load(path)`, `spikeattn count runs/spikformer/model.pt`),
ckpt.pt (full training state, for --resume), metrics.jsonl, summary.json, curves.png, result.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import spikeattn as sa
from spikeattn.data import RandomShiftFlip, fashion_mnist
from spikeattn.data.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from spikeattn.train import TrainConfig, accuracy, train
from spikeattn.models import parse_overrides
from spikeattn.train.bn import recalibrate_bn
from spikeattn.train.checkpoint import load_checkpoint
from spikeattn.train.loop import CHECKPOINT_NAME
from spikeattn.train.model_file import load_model, save_model

# The preset carries the recipe (T=1, early pooling, tau=1.2: the reasons are beside it in
# spikeattn/models/spikformer.py); --set changes any SpikformerConfig field.
DEFAULT_PRESET = "spikformer-mini-fmnist"

# ---------------------------------------------------------------------------------------------- config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="preset overrides, Python literals (e.g. T=4 dim=96)")
    p.add_argument("--quick", action="store_true", help="a few hundred images and a few dozen steps (CI)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps instead of --epochs")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="instead of --steps/--epochs: as many steps as fit this long on this machine "
                        "(timed on a copy of the model first), so the cosine schedule still ends at 0")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=False,
                   help="random shifts of up to 2 pixels and left-right flips of the training images")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (the recorded 85%% run used 1)")
    p.add_argument("--max-minutes", type=float, default=9.0, help="training stops (eval + checkpoint) after this long")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--out", default="runs/spikformer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------- model


def build_model(preset: str, overrides: dict) -> nn.Module:
    return sa.models.spikformer(preset, **overrides)


def load(path) -> tuple[nn.Module, dict]:
    """The model saved by ``run`` (eval mode) and its extra entries (test accuracy...)."""
    return load_model(path)


def steps_for_budget(model: nn.Module, train_set, batch_size: int, minutes: float,
                     bounds: tuple[int, int] = (500, 6000)) -> tuple[int, float]:
    """(optimizer steps that fit ``minutes`` of training here, measured seconds per step).

    Times a few AdamW steps of a copy of ``model`` on one real batch (the first ones are warm-up),
    so the run's own model, optimizer and RNG are untouched. 10% is kept back for data loading,
    logging and checkpoints. A fixed step count would overrun on a slower machine and waste a faster one.
    """
    probe = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-4)
    x = torch.stack([train_set[i][0] for i in range(batch_size)])
    y = torch.as_tensor([int(train_set[i][1]) for i in range(batch_size)])
    rng = torch.get_rng_state()
    seconds = []
    for _ in range(8):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(probe(x), y).backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    torch.set_rng_state(rng)
    per_step = statistics.median(seconds[3:])
    return int(min(max(0.9 * 60 * minutes / per_step, bounds[0]), bounds[1])), per_step


# ---------------------------------------------------------------------------------------------- run


def run(args) -> tuple[nn.Module, dict]:
    """Train, recalibrate BN, test, save. Returns the trained model and a result dict."""
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    train_limit, test_limit = (640, 500) if args.quick else (None, None)
    train_set = fashion_mnist("train", root=args.data, limit=train_limit)
    test_set = fashion_mnist("test", root=args.data, limit=test_limit)

    torch.manual_seed(args.seed)
    model = build_model(args.preset, overrides)
    steps = 60 if args.quick else args.steps
    ckpt = Path(args.out) / CHECKPOINT_NAME
    if steps is None and args.budget_minutes is not None and args.resume and ckpt.exists():
        steps = load_checkpoint(ckpt)["config"]["steps"]  # the schedule it started with, not a new timing
    elif steps is None and args.budget_minutes is not None:
        steps, per_step = steps_for_budget(model, train_set, args.batch_size, args.budget_minutes)
        print(f"{args.budget_minutes:g} min budget: {steps} steps of ~{per_step * 1e3:.0f} ms")
    config = TrainConfig(
        steps=steps, epochs=args.epochs, batch_size=32 if args.quick else args.batch_size,
        lr=args.lr, weight_decay=0.01, warmup_steps=5 if args.quick else 100, grad_clip=1.0,
        eval_every=0, log_every=10 if args.quick else 50, checkpoint_every=0 if args.quick else 300,
        out_dir=args.out, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
        progress=not args.no_progress,
    )
    print(f"{args.preset} {overrides}: {model.num_params()} parameters, "
          f"{len(train_set)} train / {len(test_set)} test images, {args.threads} threads")

    start, cpu_start = time.perf_counter(), time.process_time()
    # shifted-in pixels are background: 0 before normalisation
    augment = RandomShiftFlip(pad=2, flip=True, fill=-FASHION_MNIST_MEAN / FASHION_MNIST_STD) if args.augment else None
    summary = train(model, train_set, config, eval_set=test_set, augment=augment)
    train_s = time.perf_counter() - start
    recalibrate_bn(model, train_set, batches=5 if args.quick else 40)
    acc = accuracy(model, test_set)
    result = {"preset": args.preset, "overrides": overrides, "test_acc": acc,
              "test_acc_before_bn_recalibration": summary["final_eval_acc"], "test_images": len(test_set),
              "steps": summary["steps"], "epochs": summary["epochs"], "stopped_early": summary["stopped_early"],
              "train_wall_s": train_s, "wall_s": time.perf_counter() - start,
              "cpu_s": time.process_time() - cpu_start, "threads": args.threads,
              "budget_minutes": args.budget_minutes, "augment": repr(augment) if augment else None}
    # preset + overrides rebuild it by name; the full model_config (inside) rebuilds it exactly
    save_model(model, Path(args.out) / "model.pt", preset=args.preset, overrides=overrides, test_acc=acc)
    (Path(args.out) / "result.json").write_text(json.dumps(result, indent=2, default=list) + "\n")
    print(f"test accuracy {acc:.4f} on {len(test_set)} images ({summary['final_eval_acc']:.4f} before BN "
          f"recalibration) after {summary['steps']} steps ({summary['epochs']:.2f} epochs) in "
          f"{result['wall_s']:.0f} s wall / {result['cpu_s']:.0f} s CPU; results in {args.out}/")
    return model, result


def main(argv=None) -> dict:
    return run(parse_args(argv))[1]


if __name__ == "__main__":
    main()
