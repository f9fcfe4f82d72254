"""Count the operations, neuron updates, bytes and energy of a spiking model, next to its ANN twin.

Uses Spikformer-2-256 from ``spikeattn.models`` on CIFAR-size images.
Prints the per-layer table and the SNN-vs-ANN comparison, writes JSON and PNG files.

    .venv/bin/python examples/count_ops.py                  # -> out/count_ops/{report,ann}.{json,png}
    .venv/bin/python examples/count_ops.py --profile loihi --out /tmp/ops
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

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


def build_model():
    # Spikformer-2-256 (a small CIFAR-size config); its forward takes an image batch [B, 3, H, W].
    name = "spikformer-2-256"
    model = sa.models.spikformer(name, num_classes=10, img_size=args.img_size, in_channels=3, T=args.T)
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
