"""Train a small spiking network on Fashion-MNIST on the CPU, top to bottom.

    python examples/demo.py             # ~5 minutes on 2 busy CPU cores, ~89% test accuracy
    python examples/demo.py --quick     # a few hundred images, ~1 minute: the CI smoke test

Results go to runs/demo/: ckpt.pt, metrics.jsonl, summary.json, curves.png.
Rerun with --resume to continue a stopped run from its checkpoint.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import spikeattn as sa
from spikeattn.data import direct_encode, fashion_mnist
from spikeattn.train import TrainConfig, train

# ---------------------------------------------------------------------------------------------- model


class SpikingConvNet(nn.Module):
    """Conv-BN-pool-LIF, Conv(stride 2)-BN-LIF, then a linear read-out averaged over T steps.

    Input: images [B, 1, 28, 28]. Direct encoding: the analog image is shown at every step, so the
    first conv + BN + pool output is the same for all T and is computed once, then repeated as
    [T, B, ...]. Later layers run on [T*B, ...] (time folded into the batch), the LIFs on [T, B, ...].
    """

    def __init__(self, T: int = 4, channels: tuple[int, int] = (32, 64), num_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.T = T
        self.stem = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.MaxPool2d(2))
        self.lif1 = sa.neuron.LIF(tau=2.0, detach_reset=True)
        self.conv2 = nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c2))
        self.lif2 = sa.neuron.LIF(tau=2.0, detach_reset=True)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 7 * 7, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        T, B = self.T, images.shape[0]
        x = direct_encode(self.stem(images), T)                  # (T, B, c1, 14, 14), computed once
        s = self.lif1(x).flatten(0, 1)                           # (T*B, c1, 14, 14) spikes
        x = self.conv2(s)                                        # (T*B, c2, 7, 7)
        s = self.lif2(x.view(T, B, *x.shape[1:])).flatten(0, 1)  # (T*B, c2, 7, 7) spikes
        return self.head(s).view(T, B, -1).mean(0)               # (B, classes): rate read-out


def build_model(args) -> nn.Module:
    """The one place that decides the network (a Spikformer preset will plug in here)."""
    return SpikingConvNet(T=args.T)


# ---------------------------------------------------------------------------------------------- config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few hundred images and a few dozen steps (CI)")
    p.add_argument("--steps", type=int, default=500, help="optimizer steps (500 x 64 images ~ half an epoch)")
    p.add_argument("--epochs", type=int, default=None, help="train for whole epochs instead of --steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--T", type=int, default=4, help="time steps")
    p.add_argument("--max-minutes", type=float, default=10.0, help="stop early (eval + checkpoint) after this long")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    train_limit, test_limit = (640, 500) if args.quick else (None, None)
    train_set = fashion_mnist("train", root=args.data, limit=train_limit)
    test_set = fashion_mnist("test", root=args.data, limit=test_limit)

    torch.manual_seed(args.seed)
    model = build_model(args)
    steps = 40 if args.quick else (None if args.epochs else args.steps)
    total = steps or args.epochs * (len(train_set) // args.batch_size)
    config = TrainConfig(
        steps=steps, epochs=args.epochs or 1, batch_size=32 if args.quick else args.batch_size,
        lr=args.lr, weight_decay=0.01, warmup_steps=5 if args.quick else 50, grad_clip=1.0,
        eval_every=0 if args.quick else max(1, total // 2), log_every=10 if args.quick else 25,
        checkpoint_every=0 if args.quick else 200, out_dir=args.out, seed=args.seed, resume=args.resume,
        max_minutes=args.max_minutes, progress=not args.no_progress,
    )
    print(f"{sum(p.numel() for p in model.parameters())} parameters, {len(train_set)} train / {len(test_set)} test images")

    start = time.perf_counter()
    summary = train(model, train_set, config, eval_set=test_set)
    print(f"test accuracy {summary['final_eval_acc']:.4f} on {len(test_set)} images after {summary['steps']} steps "
          f"({summary['epochs']:.2f} epochs) in {time.perf_counter() - start:.0f} s; results in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
