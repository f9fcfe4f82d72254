"""Spikformer V2 on Fashion-MNIST with 1,000 labels: masked-image pretraining + fine-tuning vs from scratch.

    python examples/pretrain_spikformer_v2.py --threads 1      # full run: ~17 minutes on one core here
    python examples/pretrain_spikformer_v2.py --quick          # a few hundred images, tens of steps (CI)
    python examples/pretrain_spikformer_v2.py --holdout 10000  # tune a recipe on held-out training images, not on test
    python examples/pretrain_spikformer_v2.py --holdout 10000 --pretrained runs/spikformer_v2/pretrain/pretrained.pt
                                                               # ... and tune fine-tuning alone, reusing step 1

1. Pretrain the encoder of `spikformer-v2-mini-fmnist` (SCS stem + 2 spiking blocks) on the 60,000
   training images WITHOUT labels: mask 40% of the 7x7 patches, reconstruct their pixels with a small
   non-spiking decoder.
2. For each of --seeds draws of 1,000 labelled images: fine-tune it (stem + blocks loaded, new head),
   and train the same model from scratch with the same budget.
Both are tested on the 10,000 test images; the gain is the mean over the draws. Cost on this 2-core
AMD EPYC machine, one thread: ~0.16 s per pretraining step (batch 128), ~25 s per fine-tuning run of
300 steps including its test pass. Results go to --out: pretrain/ (pretrained.pt, ckpt.pt, ...),
finetune-<seed>/, scratch-<seed>/, reconstructions.png, result.json (and --result, the recorded JSON, in a full run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset

from spikeattn.data import fashion_mnist
from spikeattn.data.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from spikeattn.models.spikformer_mae import patchify, unpatchify
from spikeattn.recipes import V2PretrainRecipe, fit_spikformer, pretrain_spikformer_v2, v2_finetune_recipe
from spikeattn.recipes.spikformer_v2 import V2_PRESET as PRESET
from spikeattn.train.metrics import write_json
from spikeattn.train.model_file import load_model
from spikeattn.train.pretrain import random_keep_mask

RESULT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "spikformer_v2_pretrain_cpu.json"

# ---------------------------------------------------------------------------------------------- config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few hundred images and tens of steps (CI)")
    p.add_argument("--labels", type=int, default=1000, help="labelled training images for fine-tuning / scratch")
    pre, tune = V2PretrainRecipe(), v2_finetune_recipe()  # the measured defaults (reasons in their modules)
    p.add_argument("--pretrain-steps", type=int, default=pre.steps)
    p.add_argument("--pretrain-batch-size", type=int, default=pre.batch_size)
    p.add_argument("--pretrain-lr", type=float, default=pre.lr)
    p.add_argument("--mask-ratio", type=float, default=pre.mask_ratio)
    p.add_argument("--norm-pix", action=argparse.BooleanOptionalAction, default=pre.norm_pix,
                   help="reconstruct each patch normalised by its own mean/std (MAE's norm_pix_loss)")
    p.add_argument("--decoder-dim", type=int, default=pre.decoder_dim)
    p.add_argument("--decoder-depth", type=int, default=pre.decoder_depth)
    p.add_argument("--finetune-steps", type=int, default=tune.steps, help="steps for BOTH fine-tuning and scratch")
    p.add_argument("--finetune-batch-size", type=int, default=tune.batch_size)
    p.add_argument("--finetune-lr", type=float, default=tune.lr)
    p.add_argument("--head-init", choices=("random", "probe"), default="random",
                   help="both arms: the classifier head starts random, or fitted to the initial features (LP-FT)")
    p.add_argument("--T", type=int, default=1, help="time steps for fine-tuning and scratch (1 or 4...)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--train-limit", type=int, default=None, help="the first N training images only")
    p.add_argument("--test-limit", type=int, default=None, help="the first N test images only")
    p.add_argument("--out", default="runs/spikformer_v2")
    p.add_argument("--result", default=None, help=f"also write the result JSON here (full run default: {RESULT})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=5,
                   help="label draws (seed, seed+1, ...): each fine-tunes AND trains from scratch; the gain is "
                        "their mean (one draw of 1,000 labels swings a few points)")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="tune without the test set: keep the last N training images out of pretraining and "
                        "labelling, and report accuracy on them instead of on the test images")
    p.add_argument("--pretrained", default=None, metavar="FILE",
                   help="skip step 1 and fine-tune from this pretrained.pt (it must have been pretrained on the "
                        "same images: same --holdout; checked by their count)")
    p.add_argument("--log-every", type=int, default=None, help="steps between train-loss lines (default: the recipes')")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:  # QUICK replaces the defaults; flags given on the command line still win
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    return args


# `--quick` (CI): a few hundred images and tens of steps.
QUICK = dict(train_limit=600, test_limit=500, labels=200, pretrain_steps=20, pretrain_batch_size=32,
             finetune_steps=30, finetune_batch_size=32, seeds=2, log_every=10)


# ---------------------------------------------------------------------------------------------- pieces


def classify(args, labelled, test_set, out: Path, pretrained: Path | None, seed: int) -> dict:
    """Train a classifier on ``labelled`` (from ``pretrained`` or from scratch), recalibrate BN, test it."""
    config = v2_finetune_recipe(
        overrides={"T": args.T}, init_from=str(pretrained) if pretrained else None, head_init=args.head_init,
        steps=args.finetune_steps, warmup_steps=max(1, args.finetune_steps // 10), batch_size=args.finetune_batch_size,
        lr=args.finetune_lr, out=str(out), seed=seed, progress=not args.no_progress,
        **({"log_every": args.log_every} if args.log_every else {}))
    _, result = fit_spikformer(config, labelled, test_set)
    return {k: result[k] for k in ("test_acc", "steps", "epochs", "final_train_loss", "wall_s")}


@torch.no_grad()
def save_reconstructions(mae, images: torch.Tensor, mask_ratio: float, path: Path, norm_pix: bool) -> None:
    """PNG: rows of original, masked input, reconstruction (visible patches pasted back), for a few images."""
    import matplotlib  # lazy: only this picture needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mae.eval()
    keep = random_keep_mask(images.shape[0], mae.num_tokens, mask_ratio, generator=torch.Generator().manual_seed(1))
    pred = mae(images, keep)
    target = patchify(images, mae.patch)
    if norm_pix:                                      # undo norm_pix with each true patch's own statistics
        pred = pred * (target.var(-1, keepdim=True) + 1e-6).sqrt() + target.mean(-1, keepdim=True)
    vis = keep[..., None].to(images.dtype)
    shown = [images, unpatchify(target * vis, mae.patch, mae.grid, mae.channels),
             unpatchify(target * vis + pred * (1 - vis), mae.patch, mae.grid, mae.channels)]
    fig, axes = plt.subplots(3, images.shape[0], figsize=(1.2 * images.shape[0], 3.8))
    for row, (name, imgs) in enumerate(zip(("original", "masked", "reconstructed"), shown)):
        for col in range(images.shape[0]):
            ax = axes[row, col]
            ax.imshow((imgs[col, 0] * FASHION_MNIST_STD + FASHION_MNIST_MEAN).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pretrain_encoder(args, images, out: Path) -> tuple[nn.Module, dict]:
    """Step 1: masked-image pretraining of a fresh encoder on ``images`` (labels dropped)."""
    config = V2PretrainRecipe(
        mask_ratio=args.mask_ratio, norm_pix=args.norm_pix, decoder_dim=args.decoder_dim, decoder_depth=args.decoder_depth,
        steps=args.pretrain_steps, batch_size=args.pretrain_batch_size, lr=args.pretrain_lr,
        warmup_steps=max(1, args.pretrain_steps // 20), out=str(out / "pretrain"), seed=args.seed,
        progress=not args.no_progress, **({"log_every": args.log_every} if args.log_every else {}))
    return pretrain_spikformer_v2(config, images)


def reused_pretraining(path, images: int) -> dict:
    """What an earlier step 1 wrote into its pretrained.pt; refuses a file pretrained on other images."""
    _, extra = load_model(path)
    meta = extra.get("pretrain", {})
    if meta.get("images") != images:  # e.g. a full-data file reused under --holdout: it has seen the held-out images
        raise ValueError(f"--pretrained {path} was pretrained on {meta.get('images', 'an unrecorded number of')} "
                         f"images, this run pretrains on {images}: pretrain again with the same --holdout")
    return {"steps": meta["steps"], "batch_size": meta.get("batch_size"), "lr": meta.get("lr"),
            "final_loss": meta["final_loss"], "wall_s": 0.0, "file": str(path), "mask_ratio": meta["mask_ratio"], "norm_pix": meta["norm_pix"],
            "decoder": {"dim": meta["decoder_dim"], "depth": meta["decoder_depth"]}}


# ---------------------------------------------------------------------------------------------- run


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    labels = args.labels
    images = fashion_mnist("train", root=args.data, limit=args.train_limit)   # pretraining ignores its labels
    if args.holdout:  # validation: the held-out images are neither pretrained on nor labelled
        if not 0 < args.holdout <= len(images) - labels:
            raise ValueError(f"--holdout must leave at least {labels} training images, got {args.holdout} of {len(images)}")
        split = len(images) - args.holdout
        images, test_set = Subset(images, range(split)), Subset(images, range(split, len(images)))
    else:
        test_set = fashion_mnist("test", root=args.data, limit=args.test_limit)
    evaluated_on = f"validation (last {args.holdout} training images)" if args.holdout else "test"
    print(f"{PRESET}: pretrain on {len(images)} unlabelled images, fine-tune on {labels} labels "
          f"({args.seeds} draws), evaluate on {len(test_set)} {'held-out training' if args.holdout else 'test'} "
          f"images; {args.threads} threads")
    start, cpu_start = time.perf_counter(), time.process_time()

    # 1. masked-image pretraining (no labels), or the file of an earlier one
    if args.pretrained:
        pretrained, info = Path(args.pretrained), reused_pretraining(args.pretrained, len(images))
        print(f"reusing {pretrained}: {info['steps']} pretraining steps, final loss {info['final_loss']:.3f}")
    else:
        mae, info = pretrain_encoder(args, images, out)
        pretrained = Path(info["file"])
        shown = torch.stack([test_set[i][0] for i in range(8)])
        save_reconstructions(mae, shown, args.mask_ratio, out / "reconstructions.png", args.norm_pix)
        print(f"pretrained {info['steps']} steps in {info['wall_s']:.0f} s, final loss {info['final_loss']:.3f}")

    # 2. fine-tune from the pretrained file, 3. the same model and budget from scratch; per label draw
    draws = []
    for seed in range(args.seed, args.seed + args.seeds):
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:labels]
        labelled = Subset(images, pick.tolist())  # a seeded random draw of labelled images
        finetuned = classify(args, labelled, test_set, out / f"finetune-{seed}", pretrained, seed)
        scratch = classify(args, labelled, test_set, out / f"scratch-{seed}", None, seed)
        draws.append({"seed": seed, "finetune": finetuned, "scratch": scratch,
                      "gain_points": 100 * (finetuned["test_acc"] - scratch["test_acc"])})
        print(f"labels seed {seed}: pretrained + fine-tuned {finetuned['test_acc']:.4f}, "
              f"from scratch {scratch['test_acc']:.4f} ({draws[-1]['gain_points']:+.2f} points)")
    mean = {arm: statistics.mean(d[arm]["test_acc"] for d in draws) for arm in ("finetune", "scratch")}
    gains = [d["gain_points"] for d in draws]
    gain_std = statistics.stdev(gains) if len(gains) > 1 else 0.0
    print(f"{evaluated_on} accuracy with {labels} labels, mean of {len(draws)} draws: pretrained + fine-tuned "
          f"{mean['finetune']:.4f}, from scratch {mean['scratch']:.4f} "
          f"({statistics.mean(gains):+.2f} points, std {gain_std:.2f})")

    result = {"preset": PRESET, "T": args.T, "labels": labels, "unlabelled_images": len(images),
              "test_images": len(test_set), "evaluated_on": evaluated_on, "mask_ratio": info["mask_ratio"],
              "norm_pix": info["norm_pix"], "decoder": info["decoder"],
              "pretrain": {k: info[k] for k in ("steps", "batch_size", "lr", "final_loss", "wall_s", "file")},
              "finetune_acc_mean": mean["finetune"], "scratch_acc_mean": mean["scratch"],
              "gain_points": statistics.mean(gains), "gain_points_std": gain_std, "draws": draws,
              "finetune_budget": {"steps": args.finetune_steps, "lr": args.finetune_lr, "head_init": args.head_init},
              "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu_start,
              "threads": args.threads, "quick": args.quick, "date": time.strftime("%Y-%m-%d")}
    write_json(out / "result.json", result)
    record = args.result or (None if args.quick or args.holdout or args.pretrained else RESULT)
    if record:
        write_json(record, result)
    print(f"{result['wall_s']:.0f} s wall / {result['cpu_s']:.0f} s CPU; results in {out}/")
    return result


def main(argv=None) -> dict:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
