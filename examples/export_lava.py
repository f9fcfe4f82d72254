"""Train a tiny MLP SNN on Fashion-MNIST (about a minute) or load one, export it to Lava, run N test
images in Lava (float), and print per-layer spike agreement and torch vs Lava accuracy.

    python examples/export_lava.py [--seconds 60] [--checkpoint net.pt] [--n 64] [--T 4]

Needs `.venv-lava` (`make lava-env`). The model is the exportable pattern of spikeattn.export.PerStep.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.data import fashion_mnist
from spikeattn.export import PerStep, run_lava, to_lava

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--seconds", type=float, default=60.0, help="training time budget")
ap.add_argument("--checkpoint", default=None, help="state_dict of this script's model to load instead of training")
ap.add_argument("--n", type=int, default=64, help="test images to run in Lava")
ap.add_argument("--T", type=int, default=4, help="time steps (direct encoding)")
args = ap.parse_args()
torch.manual_seed(0)

model = nn.Sequential(PerStep(nn.Flatten()), nn.Linear(784, 128), N.LIF(tau=2.0), nn.Linear(128, 10), N.LIF(tau=2.0))


def encode(images: torch.Tensor) -> torch.Tensor:
    return images.unsqueeze(0).repeat(args.T, *[1] * images.dim())   # (T, B, 1, 28, 28)


if args.checkpoint:
    model.load_state_dict(torch.load(args.checkpoint, weights_only=True))
else:
    train = fashion_mnist("train")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0, step = time.time(), 0
    while time.time() - t0 < args.seconds:
        idx = torch.randint(len(train), (128,))
        N.reset(model)
        rate = model(encode(train.images[idx])).mean(0)               # (B, 10) firing rates
        loss = nn.functional.mse_loss(rate, nn.functional.one_hot(train.labels[idx], 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    print(f"trained {step} steps in {time.time() - t0:.0f} s, last loss {loss.item():.4f}")

model.eval()
test = fashion_mnist("test", limit=args.n)
x = encode(test.images)                                                 # (T, n, 1, 28, 28)
with tempfile.TemporaryDirectory() as tmp:
    art = to_lava(model, f"{tmp}/mlp.lava", x[:, :1])
    t0 = time.time()
    out, layers = run_lava(art, x.numpy(), return_layers=True, timeout=600)
    print(f"Lava (Loihi2SimCfg, float): {args.n} images x {args.T} steps in {time.time() - t0:.1f} s")

N.reset(model)
with torch.no_grad():
    ref = {}
    h = x
    for name, m in model.named_children():
        h = m(h)
        ref[name] = h.reshape(args.T, args.n, -1).numpy()
print(f"{'layer':8} {'op':8} {'spikes equal':>14} {'torch rate':>11}")
for node in art.graph["nodes"][1:]:
    name = node["name"].split(".")[0]
    if node["op"] == "lif":
        want = ref[name]
        got = layers[node["name"]].reshape(want.shape)
        print(f"{node['name']:8} {node['op']:8} {100 * (got == want).mean():13.3f}% {want.mean():11.3f}")
acc_torch = (ref[art.graph["output"]].sum(0).argmax(-1) == test.labels.numpy()).mean()
acc_lava = (out.reshape(args.T, args.n, -1).sum(0).argmax(-1) == test.labels.numpy()).mean()
print(f"accuracy on {args.n} test images: torch {100 * acc_torch:.1f}%  Lava float {100 * acc_lava:.1f}%")
