"""Train a tiny MLP SNN on Fashion-MNIST (about a minute) or load one, export it to Lava, run N test
images in Lava (float), and print per-layer spike agreement and torch vs Lava accuracy.

    python examples/export_lava.py [--seconds 60] [--checkpoint net.pt] [--n 64] [--T 4]

With --model, export a saved spikeattn model instead (a Spikformer: the demo's runs/demo/model.pt)
and compare torch, torch with BatchNorm folded, Lava float and Lava fixed point (the default plan,
which Lava's own processes run too; and plan="per_channel" with weights of sign + 16 bits as two
8-bit synapses, and of sign + 8 bits as one), layer by layer; --json writes the table:

    python examples/export_lava.py --model runs/demo/model.pt --n 500 --json out.json

Needs `.venv-lava` (`make lava-env`). The model is the exportable pattern of spikeattn.export.PerStep.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.data import fashion_mnist
from spikeattn.export import PerStep, run_lava, to_lava
from spikeattn.train.metrics import write_json

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--seconds", type=float, default=60.0, help="training time budget")
ap.add_argument("--checkpoint", default=None, help="state_dict of this script's model to load instead of training")
ap.add_argument("--n", type=int, default=64, help="test images to run in Lava")
ap.add_argument("--T", type=int, default=4, help="time steps (direct encoding)")
ap.add_argument("--model", default=None, help="a saved spikeattn model (Spikformer) to export instead of the MLP")
ap.add_argument("--json", default=None, help="with --model: also write the table as JSON to this path")
ap.add_argument("--note", default=None, help="with --json: a note stored in the record (e.g. how the model was trained)")
args = ap.parse_args()
torch.manual_seed(0)


def neuron_spikes(net: nn.Module, x: torch.Tensor):
    """``{module path: [T, B, ...] spikes}`` of every neuron, and the model's output."""
    out = {}
    hooks = [m.register_forward_hook(lambda mod, a, y, path=path: out.__setitem__(path, y.detach().numpy()))
             for path, m in net.named_modules() if isinstance(m, (N.LIF, N.IF, N.PLIF))]
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    return out, y.numpy()


# Lava runs of the comparison: column -> (fixed_point, plan, 8-bit synapses per connection, what it is).
LAVA_MODES = {
    "Lava float": (False, "library", None, "Lava float32 process models (Loihi2SimCfg floating_pt)"),
    "Lava fixed": (True, "library", None, "Lava fixed point, the default plan (hardware/lava/quantize.py): on every "
                   "pair Lava's library runs, its numbers (one 8-bit synapse, one weight step per layer folded into "
                   "one threshold: run_lava(..., library=True) gives the same spikes); one 8-bit synapse elsewhere"),
    "Lava fixed per-channel 16-bit": (True, "per_channel", 2, "plan='per_channel': per-channel scales folded into "
                                      "per-channel thresholds, weights sign + 16 bits as two 8-bit synapses "
                                      "(custom processes only)"),
    "Lava fixed per-channel 8-bit": (True, "per_channel", 1, "the same with one 8-bit synapse per connection"),
}


def run_modes(art, x: torch.Tensor, n: int, keys) -> dict:
    """``{column: (logits [n, classes], {layer: [T, n, ...] spikes})}`` for every Lava mode."""
    runs = {}
    for mode, (fixed, plan, synapses, _) in LAVA_MODES.items():
        t0, outs, layers = time.time(), [], []
        for i in range(0, n, 100):          # 100 images per Lava run keeps the traces small
            o, lay = run_lava(art, x[:, i:i + 100].numpy(), fixed_point=fixed, return_layers=True, timeout=600,
                              plan=plan, weight_synapses=synapses)
            outs.append(o.mean(0))           # per-step logits -> torch's mean over T
            layers.append(lay)
        runs[mode] = (np.concatenate(outs), {k: np.concatenate([l[k] for l in layers], 1) for k in keys})
        print(f"{mode}: {n} images x {x.shape[0]} steps in {time.time() - t0:.1f} s")
    return runs


def compare_saved_model(path: str, n: int) -> dict:
    """Per-layer spike agreement and accuracy: torch, torch BN-folded and every mode of ``LAVA_MODES``."""
    from spikeattn.export.spikformer import fold_spikformer
    from spikeattn.train.model_file import load_model

    net, _ = load_model(path)
    net.eval()
    t_steps = net.config.T
    test = fashion_mnist("test", limit=n)
    x = test.images.unsqueeze(0).expand(t_steps, *test.images.shape).contiguous()   # (T, n, C, H, W)
    ref, logits = neuron_spikes(net, x)
    folded, logits_folded = neuron_spikes(fold_spikformer(net), x)
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_modes(to_lava(net, f"{tmp}/model.lava", x[:, :1]), x, n, ref)
    runs = {"torch folded": (logits_folded, folded), **runs}
    cols = list(runs)
    equal = {c: {k: runs[c][1][k].reshape(want.shape) == want for k, want in ref.items()} for c in cols}
    print(f"{'neuron layer':26} {'rate':>6} " + " ".join(f"{c + '=torch':>22}" for c in cols))
    layers = {}
    for k, want in ref.items():
        layers[k] = {"rate": float(want.mean()), "values_compared": int(want.size),
                     **{c: 100 * float(equal[c][k].mean()) for c in cols}}
        print(f"{k:26} {want.mean():6.3f} " + " ".join(f"{layers[k][c]:21.3f}%" for c in cols))
    # every neuron of every layer and step counted once
    total = {c: 100 * sum(int(e.sum()) for e in equal[c].values()) / sum(e.size for e in equal[c].values())
             for c in cols}
    print(f"{'all layers':26} {'':6} " + " ".join(f"{total[c]:21.3f}%" for c in cols))
    acc = {name: 100 * float((l.argmax(-1) == test.labels.numpy()).mean())
           for name, l in (("torch", logits), *((c, runs[c][0]) for c in cols))}
    print(f"accuracy on {n} test images: " + "  ".join(f"{k} {v:.1f}%" for k, v in acc.items()))
    return {"model": path, "n": n, "T": t_steps, "layers": layers, "all_layers": total, "accuracy": acc,
            "modes": {mode: what for mode, (*_, what) in LAVA_MODES.items()}}


def write_record(path: str, record: dict) -> None:
    """Write ``record`` with its command and date; an earlier record at ``path`` moves to ``previous_runs``."""
    record = {"command": "python " + " ".join(sys.argv),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "host": platform.node(), **record}
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        legacy = [old.pop("previous_run")] if "previous_run" in old else []   # the single-run key of older records
        record["previous_runs"] = [old, *legacy, *old.pop("previous_runs", [])]
    print(f"wrote {write_json(path, record)}")


if args.model:
    result = compare_saved_model(args.model, args.n)
    if args.json:
        write_record(args.json, {**result, **({"note": args.note} if args.note else {})})
    raise SystemExit(0)

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
