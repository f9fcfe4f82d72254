"""Count the operations, neuron updates, bytes and energy of a spiking model, next to its ANN twin.

Uses a Spikformer from ``spikeattn.models`` when that module is available, else a small conv SNN.
Prints the per-layer table and the SNN-vs-ANN comparison, writes JSON and PNG files.

    .venv/bin/python examples/count_ops.py                  # -> out/count_ops/{report,ann}.{json,png}
    .venv/bin/python examples/count_ops.py --profile loihi --out /tmp/ops
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

import spikeattn as sa
from spikeattn import opcount

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--T", type=int, default=4, help="time steps")
parser.add_argument("--img-size", type=int, default=32)
parser.add_argument("--profile", default="45nm", help=f"energy profile name or .toml path ({', '.join(opcount.list_profiles())})")
parser.add_argument("--out", type=Path, default=Path("out/count_ops"))
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)


class ConvSNN(nn.Module):
    """Image [T, B, 3, H, W] -> 2 x (Conv-BN-LIF, max-pool) -> Linear -> class scores [T, B, 10]."""

    def __init__(self, img_size: int):
        super().__init__()
        self.conv1, self.bn1, self.lif1 = nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), sa.neuron.LIF()
        self.conv2, self.bn2, self.lif2 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), sa.neuron.LIF()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(64 * (img_size // 4) ** 2, 10)

    def forward(self, x):
        t, b = x.shape[:2]
        y = self.pool(self.bn1(self.conv1(x.flatten(0, 1))))              # (T*B, 32, H/2, W/2)
        y = self.lif1(y.unflatten(0, (t, b)))                              # spikes (T, B, 32, H/2, W/2)
        y = self.pool(self.bn2(self.conv2(y.flatten(0, 1))))               # (T*B, 64, H/4, W/4)
        y = self.lif2(y.unflatten(0, (t, b)))
        return self.fc(y.flatten(2))                                       # (T, B, 10)


def build_model():
    try:
        from spikeattn import models
    except ImportError:
        return ConvSNN(args.img_size), torch.rand(args.T, 1, 3, args.img_size, args.img_size), "conv SNN"
    # Spikformer-2-256 (a small CIFAR-size config); its forward takes an image batch [B, 3, H, W].
    name = "spikformer-2-256"
    presets = models.list_presets() if hasattr(models, "list_presets") else []
    if presets and name not in presets:
        name = next(p for p in presets if p.startswith("spikformer"))
    model = models.spikformer(name, num_classes=10, img_size=args.img_size, in_channels=3, T=args.T)
    return model, torch.rand(1, 3, args.img_size, args.img_size), name


model, x, label = build_model()
# Untrained BatchNorm in eval mode (running mean 0, var 1) passes tiny currents and the network stays
# silent; batch statistics (train mode) give the firing rates of a working network. The counter runs
# without autograd and restores the BN running statistics afterwards.
model.train()
print(f"model: {label}, input {tuple(x.shape)}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

report = opcount.count(model, x)
print(report.table())
energy = report.energy(args.profile)
print(f"\nenergy ({energy['profile']}): {energy['total']['total_j'] * 1e6:.3f} uJ "
      f"(compute {energy['total']['compute_j'] * 1e6:.3f} uJ, memory {energy['total']['memory_j'] * 1e6:.3f} uJ)")

comparison = opcount.compare_ann(model, x)
print("\n" + comparison.table(args.profile))

args.out.mkdir(parents=True, exist_ok=True)
for path in (report.to_json(args.out / "report.json"), report.plot(args.out / "report.png"),
             comparison.to_json(args.out / "ann.json", args.profile), comparison.plot(args.out / "ann.png", args.profile)):
    print("wrote", path)
