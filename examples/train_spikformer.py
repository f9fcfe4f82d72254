"""Train a small Spikformer on Fashion-MNIST on the CPU, top to bottom: the recipe of `make demo`.

    python examples/train_spikformer.py                          # the recorded recipe: 6000 steps, ~6 min on one core here
    python examples/train_spikformer.py --set dim=128 heads=4 T=2 --epochs 24   # the 91.31% run (~93 min)
    python examples/train_spikformer.py --quick                  # a few hundred images (CI)

Every field of ``spikeattn.recipes.SpikformerRecipe`` is a flag (--steps, --budget-minutes, --lr, --augment,
--resume, --checkpoint-every, ...); `spikeattn train spikformer` takes the same flags and trains the same model.
Results go to runs/spikformer/: model.pt (config + weights: `load(path)`, `spikeattn count runs/spikformer/model.pt`),
ckpt.pt (full training state, for --resume), metrics.jsonl, summary.json, curves.png, result.json.
"""

from __future__ import annotations

import argparse

import torch

from spikeattn.models import parse_overrides
from spikeattn.recipes import SpikformerRecipe, add_flags, fit_spikformer, from_flags
from spikeattn.recipes.spikformer import QUICK
from spikeattn.train.model_file import load_model as load  # noqa: F401  (the reader of model.pt)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_flags(p, SpikformerRecipe)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model config overrides, Python literals (e.g. T=4 dim=96)")
    p.add_argument("--quick", action="store_true", help="a few hundred images and a few dozen steps (CI)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (the recorded runs used 1)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    # defaults (the measured recipe) < --quick < flags given on the command line
    config = from_flags(SpikformerRecipe, args, **(QUICK if args.quick else {}), overrides=parse_overrides(args.set))
    print(f"{config.preset} {config.overrides}, {args.threads} threads: results in {config.out}/")

    model, result = fit_spikformer(config)

    print(f"test accuracy {result['test_acc']:.4f} on {result['test_images']} images "
          f"({result['test_acc_before_bn_recalibration']:.4f} before BN recalibration) after {result['steps']} steps "
          f"({result['epochs']:.2f} epochs) in {result['wall_s']:.0f} s wall / {result['cpu_s']:.0f} s CPU")
    return model, result


if __name__ == "__main__":
    main()
