"""NIR between snntorch 1.0 and spikeattn, both ways: spikes equal at every neuron layer and time step.

* ours -> snntorch: ``to_nir`` then ``snntorch.import_nir.import_from_nir``, run step by step.
  snntorch reads hard-reset LIF/PLIF with ``v_reset = 0`` (decay_input either way) and the default
  dt = 1e-4 (it assumes that dt, import_nir.py:243). Conv nets run at batch 1 only: snntorch hands
  NIR's batch-free ``Flatten(start_dim=0)`` straight to ``torch.nn.Flatten`` (import_nir.py:216),
  which then flattens the batch in. The readers' other failures are in benchmarks/nir_readers.py.
* snntorch -> ours: ``snntorch.export_nir.export_to_nir`` then ``from_nir`` (dt absent from the
  file: 1e-4, what snntorch's exporter assumed).

Currents (Linear/Conv outputs) are compared to float rounding only: snntorch runs each step's
``[B, ...]`` through the layer and we run ``[T, B, ...]`` at once, so the GEMMs may sum in another
order. Spikes are compared exactly.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import fold_batchnorm, from_nir, to_nir
from tests.export.helpers import fashion_input, scale_weights, torch_layers
from tests.export.test_nir import conv_pool

T, B = 8, 6


def snntorch_trace(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{module name: [T, ...]}`` of every submodule of an snntorch network run one step at a time."""
    out, hooks = {}, []
    for name, m in net.named_modules():
        if name:
            hooks.append(m.register_forward_hook(
                lambda mod, a, y, name=name: out.setdefault(name, []).append(y[0] if isinstance(y, tuple) else y)))
    try:
        with torch.no_grad():
            for xt in x:
                net(xt)
    finally:
        for h in hooks:
            h.remove()
    return {k: torch.stack(v) for k, v in out.items()}


def assert_same(want: dict, have: dict, spikes: list[str], currents: list[str]):
    for name in spikes:
        a, b = want[name], have[name].reshape(want[name].shape)
        assert 0.01 < float(a.mean()) < 0.99, f"{name}: firing rate {float(a.mean()):.3f}, test would be vacuous"
        bad = (a != b).nonzero()
        assert bad.numel() == 0, f"{name}: {len(bad)}/{a.numel()} spikes differ, first at {bad[0].tolist()}"
    for name in currents:
        np.testing.assert_allclose(have[name].reshape(want[name].shape), want[name], rtol=1e-5, atol=1e-5, err_msg=name)


# ----------------------------------------------------------------------------- ours -> snntorch
READ_BY_SNNTORCH = {
    "lif-hard": lambda: N.LIF(tau=2.0),
    "lif-no-decay-input": lambda: N.LIF(tau=3.0, v_th=0.7, decay_input=False),
    "plif-no-decay-input": lambda: N.PLIF(init_tau=2.5, decay_input=False),
}


@pytest.mark.parametrize("neuron", READ_BY_SNNTORCH.values(), ids=READ_BY_SNNTORCH.keys())
def test_our_mlp_in_snntorch(neuron):
    torch.manual_seed(0)
    model = scale_weights(nn.Sequential(nn.Linear(784, 64), neuron(), nn.Linear(64, 10), neuron()), 3.0).eval()
    x = fashion_input(B, T).flatten(2)                       # [T, B, 784]
    sn = import_from_nir(to_nir(model, x[:, :1]))            # default dt = 1e-4, snntorch's
    assert_same(torch_layers(model, x), snntorch_trace(sn, x), spikes=["1", "3"], currents=["0", "2"])


def test_our_conv_net_in_snntorch_at_batch_1():
    model = conv_pool(lambda: N.LIF(tau=2.0, decay_input=False))   # Conv, BN, AvgPool2d with padding, Flatten
    x = fashion_input(1, T)
    sn = import_from_nir(to_nir(model, x[:, :1]))
    want = torch_layers(fold_batchnorm(model), x)
    assert_same(want, {k.replace("_", "."): v for k, v in snntorch_trace(sn, x).items()},
                spikes=["1", "3", "6"], currents=["0.0", "2.0", "2.1", "4.0", "5"])


def test_snntorch_reads_flatten_with_the_batch():
    """The reader bug behind the batch-1 test above (fails once snntorch maps start_dim + 1)."""
    x = fashion_input(2, 1)
    sn = import_from_nir(to_nir(conv_pool(), x))
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        snntorch_trace(sn, x)


# ----------------------------------------------------------------------------- snntorch -> ours
def _leaky(shape, beta):
    # snntorch's exporter needs per-neuron tensors; reset_delay=False and "zero" are NIR's hard reset.
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, 0.8), reset_mechanism="zero",
                     reset_delay=False, init_hidden=True)


def _snntorch_nets():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 64), _leaky((64,), 0.9), nn.Linear(64, 10), _leaky((10,), 0.8))
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), _leaky((4, 28, 28), 0.9), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 14 * 14, 10), _leaky((10,), 0.75))
    # Synaptic with alpha = 0 is exported as CubaLIF with tau_syn = dt: the current decays fully each step.
    syn = snn.Synaptic(alpha=torch.zeros(10), beta=torch.full((10,), 0.85), threshold=torch.full((10,), 0.8),
                       reset_mechanism="zero", reset_delay=False, init_hidden=True)
    synaptic = nn.Sequential(nn.Linear(784, 64), _leaky((64,), 0.9), nn.Linear(64, 10), syn)
    return {"mlp": (scale_weights(mlp, 3.0), True), "conv": (scale_weights(conv, 3.0), False),
            "mlp-synaptic": (scale_weights(synaptic, 3.0), True)}


@pytest.mark.parametrize("kind", ["mlp", "conv", "mlp-synaptic"])
def test_snntorch_net_in_spikeattn(kind, tmp_path):
    net, flat = _snntorch_nets()[kind]
    x = fashion_input(B, T).flatten(2) if flat else fashion_input(B, T)
    nir.write(tmp_path / "sn.nir", export_to_nir(net, x[0, :1], ignore_dims=[0]))
    ours = from_nir(tmp_path / "sn.nir")
    assert ours.dt == 1e-4
    with torch.no_grad():
        have = ours.trace(x)
    want = snntorch_trace(net, x)
    neurons = [n for n, m in net.named_modules() if isinstance(m, (snn.Leaky, snn.Synaptic))]
    layers = [n for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.AvgPool2d))]
    assert_same(want, have, spikes=neurons, currents=layers)
