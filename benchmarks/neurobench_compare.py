"""spikeattn's ``report.neurobench()`` next to NeuroBench 2.3 itself, run on the same models and data.

Networks: an MLP, a conv SNN, a net with a real-valued first layer and an integer residual input
(every Linear/Conv weight 30% zeros), and the demo Spikformer (``spikformer-mini-fmnist``, untrained,
BatchNorm on batch statistics so that it fires), whose ``LinearBN`` weights are read functionally:
NeuroBench's module hooks do not see them. Inputs are [B, T, ...] (NeuroBench's layout); the wrapper
turns them time-major and starts every call from rest.

    .venv/bin/python benchmarks/neurobench_compare.py --json benchmarks/results/neurobench.json
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import _common
import spikeattn as sa

T = 4
SAMPLES = 6


class TimeMajor(nn.Module):
    """NeuroBench feeds [B, T, ...]; our layers run on [T, B, ...]. Each call starts from rest."""

    def __init__(self, net, batch_stats=False):
        super().__init__()
        self.net, self.batch_stats = net, batch_stats

    def forward(self, x):
        sa.reset(self.net)
        self.net.train(self.batch_stats)  # NeuroBench sets eval(); an untrained BN needs batch statistics to fire
        return self.net(x.transpose(0, 1))


class PerFrame(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):  # [T, B, ...] -> module on [T*B, ...]
        return self.module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class Residual(nn.Module):
    """Real-valued first layer; the last Linear reads s1 + s2, integers 0..2 (NeuroBench: MACs)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(12, 24), sa.neuron.LIF(v_th=0.2)
        self.fc2, self.lif2 = nn.Linear(24, 24), sa.neuron.LIF(v_th=0.2)
        self.fc3 = nn.Linear(24, 5)

    def forward(self, x):
        s1 = self.lif1(self.fc1(x))
        s2 = self.lif2(self.fc2(s1))
        return self.fc3(s1 + s2)


class Spikformer(nn.Module):
    """The demo Spikformer on [T, B, 1, 28, 28] frames (it repeats T itself: take the first)."""

    def __init__(self):
        super().__init__()
        self.model = sa.models.spikformer("spikformer-mini-fmnist")

    def forward(self, x):
        return self.model(x[0])


def mlp():
    return nn.Sequential(nn.Linear(12, 32), sa.neuron.LIF(), nn.Linear(32, 16), sa.neuron.LIF(), nn.Linear(16, 5))


def conv_snn():
    return nn.Sequential(PerFrame(nn.Conv2d(2, 6, 3, padding=1)), sa.neuron.LIF(),
                         PerFrame(nn.Conv2d(6, 8, 3, stride=2, padding=1)), sa.neuron.LIF(),
                         PerFrame(nn.Flatten()), nn.Linear(8 * 4 * 4, 5))


# name -> (builder, input shape per sample and step, prune, BN batch statistics)
NETS = {"mlp": (mlp, (12,), True, False), "conv": (conv_snn, (2, 8, 8), True, False),
        "residual": (Residual, (12,), True, False), "spikformer-mini-fmnist": (Spikformer, (1, 28, 28), False, True)}


def prune(net, fraction=0.3):
    """Zero a fraction of every Linear/Conv weight: effective counts and connection sparsity differ from dense."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_((torch.rand(m.weight.shape, generator=g) >= fraction).float())


def build(name: str):
    """(model wrapped for NeuroBench, input [SAMPLES, T, ...])."""
    make, shape, pruned, batch_stats = NETS[name]
    torch.manual_seed(0)
    model = TimeMajor(make(), batch_stats).eval()
    if pruned:
        prune(model)
    return model, torch.rand(SAMPLES, T, *shape) * 3


def run_neurobench(model, x) -> dict:
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import TorchModel

    wrapped = TorchModel(model)
    wrapped.add_activation_module(sa.neuron.LIF)
    bench = Benchmark(wrapped, DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=len(x)), [], [],
                      [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations, MembraneUpdates]])
    return bench.run(quiet=True)


def compare(name: str) -> dict:
    model, x = build(name)
    theirs = run_neurobench(model, x)
    ours = sa.opcount.count(model, x).neurobench()
    return {"network": name, "neurobench": theirs, "spikeattn": ours}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="benchmarks/results/neurobench.json")
    args = ap.parse_args(argv)
    runs = [compare(name) for name in NETS]
    for r in runs:
        a, b = r["neurobench"]["SynapticOperations"], r["spikeattn"]["SynapticOperations"]
        print(f"{r['network']:24s} NeuroBench {a}\n{'':24s} spikeattn  {b}")
    data = {"benchmark": "neurobench_compare", "T": T, "samples": SAMPLES,
            "environment": _common.environment(("torch", "neurobench", "snntorch", "spikeattn")),
            "runs": runs, "command": "python benchmarks/neurobench_compare.py --json " + args.json}
    _common.write_json(args.json, data)
    print("wrote", args.json)


if __name__ == "__main__":
    main()
