"""netx files of the five issue-14 networks, trained briefly on Fashion-MNIST, run by lava-dl 0.6.0
(``.venv-netx``): per-layer spike agreement with torch after netx's delay alignment, for

- ``qat``: the model fine-tuned on netx's grid (``quantize_for_netx``): the torch model as trained is
  the deployed model;
- ``ptq_<rule>``: the float model exported as it is (post-training quantisation, ``to_netx(scale=rule)``),

and the Fashion-MNIST accuracy of each model -> benchmarks/results/netx_agreement.json.

    .venv/bin/python benchmarks/netx_agreement.py [--n 16] [--T 8] [--acc-images 2000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/export/netx_nets.py

from spikeattn.data import fashion_mnist  # noqa: E402
from spikeattn.export import quantize_for_netx, to_netx  # noqa: E402
from spikeattn.export.netx import _netx_layers, netx_reference, run_netx  # noqa: E402
from tests.export.helpers import torch_layers  # noqa: E402
from tests.export.netx_nets import NETS, QAT_LR, fit, rate_accuracy, rate_input  # noqa: E402
from tests.export.test_netx_lavadl import neuron_paths  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "netx_agreement.json"
TRAIN_STEPS = {"mlp": 600, "conv_first": 400, "conv_pool": 300, "if": 600, "decay_input_false": 600}
QAT_STEPS = 200
PTQ_RULES = ("pow2", "full", "mse")


def agree(a, b) -> float:
    return float((np.asarray(a).reshape(np.shape(b)) == np.asarray(b)).mean())


def lava_dl(model, x, tmp: str, tag: str, scale: str = "pow2") -> tuple[list, float]:
    path = to_netx(model, Path(tmp) / f"{tag}.net", x, scale=scale)
    t0 = time.perf_counter()
    blocks = run_netx(path, x.numpy(), timeout=1800)
    return blocks, time.perf_counter() - t0


def one_network(name: str, x, labels, acc_images: int, tmp: str) -> dict:
    t0 = time.perf_counter()
    net = fit(NETS[name](), TRAIN_STEPS[name])
    q = quantize_for_netx(net, x)
    acc = {"float": rate_accuracy(net, acc_images), "qat_before_fine_tuning": rate_accuracy(q, acc_images)}
    fit(q.train(), QAT_STEPS, lr=QAT_LR, seed=1)
    acc["qat"] = rate_accuracy(q, acc_images)
    for rule in PTQ_RULES:
        acc[f"ptq_{rule}"] = rate_accuracy(netx_reference(net, x, rule), acc_images)
    train_s = time.perf_counter() - t0

    paths, floats = neuron_paths(net), torch_layers(net, x)
    runs = {"qat": (q, "pow2", torch_layers(q, x))} | {
        f"ptq_{rule}": (net, rule, floats) for rule in PTQ_RULES}
    layers, lava_s, correct = {p: {"values": int(floats[p].numel())} for p in paths}, 0.0, {}
    for tag, (model, rule, torch_model) in runs.items():
        blocks, seconds = lava_dl(model, x, tmp, f"{name}_{tag}", rule)
        lava_s += seconds
        ref = torch_layers(netx_reference(model, x, rule), x)
        for p, got in zip(paths, blocks):
            layers[p][tag] = {"agreement_torch_model": agree(got, torch_model[p]),
                              "agreement_netx_reference": agree(got, ref[p]),
                              "torch_rate": float(torch_model[p].mean()), "netx_rate": float(got.mean())}
        correct[tag] = int((blocks[-1].sum(0).reshape(len(labels), -1).argmax(-1) == labels).sum())
    scales = {rule: [l["scale"] for l in _netx_layers(net, x, rule)[1] if l["op"] != "flatten"]
              for rule in PTQ_RULES}
    return {"train_steps": TRAIN_STEPS[name], "qat_steps": QAT_STEPS, "accuracy": acc,
            "lava_dl_correct_of_n": correct, "layers": layers, "scales_float_model": scales,
            "min_agreement_torch_model": {tag: min(l[tag]["agreement_torch_model"] for l in layers.values())
                                          for tag in runs},
            "seconds": {"train_and_accuracy": round(train_s, 1), "lava_dl": round(lava_s, 1)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="Fashion-MNIST test images run by lava-dl")
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--acc-images", type=int, default=2000, help="test images for the torch accuracies")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    x, labels = rate_input(args.n, args.T), fashion_mnist("test", limit=args.n).labels.numpy()
    record = {
        "command": f"python benchmarks/netx_agreement.py --n {args.n} --T {args.T} --acc-images {args.acc_images}",
        "date": datetime.date.today().isoformat(), "lava_dl": "0.6.0 (netx.hdf5.Network, torch stubbed)",
        "input": "first N Fashion-MNIST test images, rate-coded spikes (pixel intensity = probability), T steps",
        "alignment": "block k's spikes shifted back k+1 steps; each block's bias switched on at its first input",
        "training": f"float: TRAIN_STEPS AdamW steps of 64 training images (MSE of output rates to one-hot); qat: "
                    f"quantize_for_netx(float model), then {QAT_STEPS} steps at lr {QAT_LR}",
        "qat": "lava-dl vs the QAT model as trained (quantize_for_netx, power-of-two scales): the deployed model",
        "ptq_<rule>": "lava-dl vs the float model exported as is, to_netx(scale=rule) (post-training quantisation)",
        "agreement_netx_reference": "vs the torch model with the file's numbers (netx_reference): netx's arithmetic",
        "accuracy": "torch models on --acc-images test images, one rate-coding draw; ptq_* = netx_reference(float)",
        "networks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in NETS:
            r = one_network(name, x, labels, args.acc_images, tmp)
            record["networks"][name] = r
            print(name, {k: round(v, 5) for k, v in r["min_agreement_torch_model"].items()},
                  {k: round(v, 4) for k, v in r["accuracy"].items()}, r["seconds"], flush=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
