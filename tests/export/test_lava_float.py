"""Float runs in Lava: spikes equal to torch at every layer and every time step, on Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spikeattn.neuron as N
from spikeattn.export import fold_batchnorm, run_lava, to_lava
from tests.export.helpers import conv_bn, fashion_input, mlp, require_lava, torch_layers

T, B = 4, 6


def assert_same_spikes(model, x, tmp_path):
    """Lava vs torch for every exported node (torch runs ``model``, which must be BN-free)."""
    art = to_lava(model, tmp_path / "net", x)
    out, layers = run_lava(art, x.numpy(), return_layers=True)
    ref = torch_layers(model, x)
    assert set(layers) <= set(ref), f"unexpected nodes {set(layers) - set(ref)}"
    lif_nodes = [n["name"] for n in art.graph["nodes"] if n["op"] == "lif"]
    assert lif_nodes and set(lif_nodes) <= set(layers)
    for name, got in layers.items():
        want = ref[name].numpy()
        got = got.reshape(want.shape)
        if name in lif_nodes:
            assert set(np.unique(got)) <= {0.0, 1.0}
            assert 0.01 < want.mean() < 0.99, f"{name}: firing rate {want.mean():.3f}, test would be vacuous"
            bad = np.argwhere(got != want)
            assert bad.size == 0, f"{name}: {len(bad)}/{got.size} spikes differ, first at (t, b, i) = {bad[0]}"
    np.testing.assert_array_equal(out.reshape(T, B, -1), ref[art.graph["output"]].numpy())


def test_mlp_lif(tmp_path):
    require_lava()
    assert_same_spikes(mlp(), fashion_input(B, T), tmp_path)


@pytest.mark.parametrize("neuron", [
    lambda: N.LIF(tau=2.0, v_reset=None),                      # soft reset
    lambda: N.LIF(tau=3.0, v_th=0.7, decay_input=False),
    lambda: N.LIF(tau=1.5, v_th=1.2, v_reset=-0.3),
    lambda: N.IF(v_th=1.0, v_reset=None),
    lambda: N.PLIF(init_tau=2.5, v_reset=None, decay_input=False),
], ids=["lif-soft", "lif-no-decay-input", "lif-vreset-neg", "if-soft", "plif-soft-no-decay-input"])
def test_mlp_neuron_settings(neuron, tmp_path):
    require_lava()
    assert_same_spikes(mlp(neuron), fashion_input(B, T), tmp_path)


def test_conv_bn_pool(tmp_path):
    """Torch runs the BN-folded copy (folding changes fp32 rounding); see test_fold_close for the original."""
    require_lava()
    assert_same_spikes(fold_batchnorm(conv_bn()), fashion_input(B, T), tmp_path)


def test_fold_close():
    """The folded copy computes the same function as the model with BN, to fp32 rounding."""
    net, x = conv_bn(), fashion_input(2, 1)
    folded = fold_batchnorm(net)
    a = net[0](x)
    b = folded[0](x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
