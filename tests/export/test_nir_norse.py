"""Our NIR files in norse 1.1 (not a dev dependency: skipped when norse is not installed; the
compatibility table in docs/export.md comes from benchmarks/nir_readers.py). norse takes dt only as an
argument: the documented convention passes the file's ``metadata["dt"]``."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import to_nir
from tests.export.helpers import fashion_input, scale_weights, torch_layers

norse_torch = pytest.importorskip("norse.torch")   # optional: `pip install --no-deps norse==1.1.0`

T, B = 8, 6


def norse_spikes(g, x):
    """``{node name: [T, B, n]}`` of norse's neuron cells, run step by step with its state."""
    net = norse_torch.from_nir(g, dt=float(g.metadata["dt"]))
    out, hooks = {}, []
    for path, m in net.named_modules():
        if path.split(".")[-1] in ("1", "3"):
            hooks.append(m.register_forward_hook(lambda mod, a, y, k=path.split(".")[-1]: out.setdefault(k, []).append(y[0])))
    state = None
    with torch.no_grad():
        for xt in x:
            state = net(xt, state)[1]
    for h in hooks:
        h.remove()
    return {k: torch.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("neuron", [lambda: N.LIF(tau=2.0), lambda: N.IF()], ids=["lif-hard", "if-hard"])
def test_norse_reads_our_mlp(neuron, caplog):
    torch.manual_seed(0)
    model = scale_weights(nn.Sequential(nn.Linear(784, 64), neuron(), nn.Linear(64, 10), neuron()), 3.0).eval()
    x = fashion_input(B, T).flatten(2)
    with caplog.at_level(logging.ERROR):
        got = norse_spikes(to_nir(model, x[:, :1]), x)
    want = torch_layers(model, x)
    for name in ("1", "3"):
        assert 0.01 < float(want[name].mean()) < 0.99
        assert torch.equal(got[name].reshape(want[name].shape), want[name]), name


def test_norse_drops_r():
    """norse ignores NIR's r (import_nir.py:122): decay_input=False (r = tau_steps) reads wrong."""
    torch.manual_seed(0)
    model = scale_weights(nn.Sequential(nn.Linear(784, 64), N.LIF(tau=3.0, v_th=0.7, decay_input=False)), 3.0).eval()
    x = fashion_input(B, T).flatten(2)
    got = norse_spikes(to_nir(model, x[:, :1]), x)
    assert not torch.equal(got["1"].reshape(T, B, -1), torch_layers(model, x)["1"])
