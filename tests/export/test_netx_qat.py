"""Quantisation-aware training for netx (``quantize_for_netx``, ``netx_grid``): the fine-tuned model
computes with exactly the numbers ``to_netx`` writes, gradients pass straight through the rounding,
and the scale rules of post-training export do what they say. No lava-dl here (test_netx_lavadl.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import NotExportable, quantize_for_netx, to_netx
from spikeattn.export.netx import netx_reference
from spikeattn.export.netx_grid import NetxGrid, choose_scale
from spikeattn.export.netx_qat import netx_tau
from tests.export.helpers import torch_layers
from tests.export.netx_nets import NETS, rate_input
from tests.export.test_netx import layers

h5py = pytest.importorskip("h5py")
X = rate_input(2, 8)


def nudge(q: nn.Module, steps: int = 3) -> nn.Module:
    """A few Adam steps on a spike-count loss, so that the float weights under the grid move."""
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(steps):
        N.reset(q)
        opt.zero_grad()
        q(X).sum().backward()
        opt.step()
    N.reset(q)
    return q.eval()


@pytest.mark.parametrize("name", list(NETS))
def test_the_file_holds_the_models_numbers(name, tmp_path):
    net = NETS[name]()
    q = quantize_for_netx(net, X)
    weights = lambda: [m.weight.detach().clone() for m in q.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    before = weights()
    nudge(q)
    assert any(not torch.equal(a, b) for a, b in zip(before, weights())), "training moved no weight on the grid"
    to_netx(q, tmp_path / "q.net", X)
    ref = netx_reference(q, X)       # rebuilt from the file's numbers alone
    synapses = [m for m in q.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    rebuilt = [m for m in ref.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for m, r in zip(synapses, rebuilt, strict=True):
        assert torch.equal(m.weight, r.weight) and torch.equal(m.bias, r.bias)
    for m, r in zip(N_of(q), N_of(ref), strict=True):
        assert m.v_th == r.v_th and getattr(m, "tau", None) == getattr(r, "tau", None)
    got, want = torch_layers(q, X), torch_layers(ref, X)
    assert all(torch.equal(got[p], want[p]) for p in want)
    files = [l for l in layers(tmp_path / "q.net") if "weight" in l]
    for l, m, neuron in zip(files, synapses, N_of(q), strict=True):
        s = l["attrs"]["spikeattn_scale"]
        assert np.log2(s) == int(np.log2(s)) and np.abs(l["weight"]).max() <= 127
        assert l["neuron/vThMant"] + 1 / 64 == neuron.v_th * s
        if isinstance(neuron, N.LIF):
            assert l["neuron/vDecay"] == 4096 / neuron.tau
        if l["weight"].shape == tuple(m.weight.shape):   # no pooling folded in: compare entry by entry
            gain = 1 / neuron.tau if isinstance(neuron, N.LIF) and neuron.decay_input else 1.0
            np.testing.assert_array_equal(l["weight"], m.weight.detach().double().numpy() * gain * s)
            np.testing.assert_array_equal(l["bias"], m.bias.detach().double().numpy() * gain * s)


def N_of(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, (N.LIF, N.IF, N.PLIF))]


def test_folds_batchnorm_and_leaves_the_model_alone():
    net = NETS["conv_first"]()
    w0 = net[0][0].weight.clone()
    q = quantize_for_netx(net, X)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in q.modules())
    assert isinstance(net[0][1], nn.BatchNorm2d) and torch.equal(net[0][0].weight, w0)
    assert not any(hasattr(m, "parametrizations") for m in net.modules())


def test_gradients_flow_straight_through():
    q = quantize_for_netx(NETS["mlp"](), X)
    N.reset(q)
    q(X).sum().backward()
    original = q[1].parametrizations.weight.original
    assert original.grad is not None and original.grad.abs().sum() > 0
    assert q[3].parametrizations.bias.original.grad.abs().sum() > 0


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 1.0), st.integers(-4, 10), st.integers(0, 2**31 - 1))
def test_grid_values_and_gradient(factor, log2_scale, seed):
    grid = NetxGrid(factor, 2.0 ** log2_scale)
    w = (torch.randn(64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
         * 200 / (factor * 2.0 ** log2_scale)).requires_grad_()
    q = grid(w)
    m = q.detach() * factor * 2.0 ** log2_scale       # on the grid (exactly so when factor is a power of two)
    assert (m - m.round()).abs().max() < 1e-9 and m.round().abs().max() <= 127
    m = m.round()
    inside = (w.detach() * factor * 2.0 ** log2_scale).abs() < 127
    assert torch.equal(m[inside], (w.detach() * factor * 2.0 ** log2_scale)[inside].round())
    q.backward(torch.ones_like(q))
    torch.testing.assert_close(w.grad, inside.double(), rtol=0, atol=1e-12)   # 1 inside the range, 0 where clipped


def test_errors(tmp_path):
    with pytest.raises(NotExportable, match="decay is learned"):
        quantize_for_netx(nn.Sequential(nn.Linear(4, 2), N.PLIF()).eval(), torch.rand(1, 1, 4))
    with pytest.raises(NotExportable, match="resets to 0"):
        quantize_for_netx(nn.Sequential(nn.Linear(4, 2), N.LIF(v_reset=None)).eval(), torch.rand(1, 1, 4))
    with pytest.raises(NotExportable, match="followed by a neuron"):
        quantize_for_netx(nn.Sequential(nn.Linear(4, 2), N.LIF(), nn.Linear(2, 2)).eval(), torch.rand(1, 1, 4))
    q = quantize_for_netx(NETS["mlp"](), X)
    with pytest.raises(ValueError, match="already has parametrised weights"):
        quantize_for_netx(q, X)
    q[2].tau = 3.0                                       # the neuron changed after quantize_for_netx
    with pytest.raises(ValueError, match="changed after quantize_for_netx"):
        to_netx(q, tmp_path / "x.net", X)
    with pytest.raises(ValueError, match="no 12-bit netx decay"):
        netx_tau(10000.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        to_netx(NETS["mlp"](), tmp_path / "y.net", X, scale="minmax")


def test_netx_tau():
    assert netx_tau(2.0) == 2.0 and netx_tau(4.0) == 4.0
    assert netx_tau(3.0) == 4096 / 1365                 # round(4096 / 3) = 1365


def test_scale_rules():
    w = np.linspace(-0.9, 1.0, 101)
    assert choose_scale(w, "pow2") == 64.0               # 127 / 1.0 -> 64 (largest mantissa 64)
    assert choose_scale(w, "full") == 127.0
    assert choose_scale(np.array([-1.0, -0.5, 0.5, 1.0]), "mse") == 64.0   # exact at 64: clipping only costs
    outlier = np.concatenate([np.linspace(-0.1, 0.1, 1000), [1.0]])
    # squared errors 0.0199 (64), 0.0052 (128: the outlier clipped to 0.99, 1000 weights 2x finer), 0.255 (256)
    assert choose_scale(outlier, "mse") == 128.0
    assert choose_scale(np.zeros(3), "pow2") == 1.0
    with pytest.raises(ValueError, match="NaN or inf"):
        choose_scale(np.array([np.nan, 1.0]), "pow2")


def test_full_scale_uses_the_whole_range(tmp_path):
    to_netx(NETS["mlp"](), tmp_path / "f.net", X, scale="full")
    for l in layers(tmp_path / "f.net"):
        assert np.abs(l["weight"]).max() == 127
