"""NIR export: the written file, read back by ``nir.read`` and simulated by a small numpy forward-Euler
interpreter of NIR's equations, gives torch's spikes at every neuron layer and time step on Fashion-MNIST.

The interpreter runs in float64 from the file's float32 weights; torch runs float32 (and sums in
another order). Membranes differ by float rounding only: the Linear/Conv/pool currents agree to
<= 1.8e-6 (asserted below 1e-5), so a spike can differ only where a membrane lies that close to
threshold. Measured on these inputs: shifting every threshold by +-1e-6 changes no spike (MLP: not
even +-1e-4; conv nets: +-1e-5 does), so the float-order difference is below the margin and the
tests assert exact equality. Mutating the mapping (r, tau, IF's r = 1/dt) makes them fail.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import NotExportable, PerStep, fold_batchnorm, to_nir
from spikeattn.models import spikformer
from tests.export.helpers import fashion_input, mlp, scale_weights, torch_layers, trained_bn_stats

nir = pytest.importorskip("nir")

T, B, DT = 4, 6, 1e-3


# ----------------------------------------------------------------------------- the NIR interpreter
def _windows(x, kernel, stride, padding):
    """``[B, C, Ho, Wo, kh, kw]`` zero-padded windows of ``x [B, C, H, W]``."""
    (ph, pw), (sh, sw) = padding, stride
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return sliding_window_view(x, tuple(kernel), axis=(2, 3))[:, :, ::sh, ::sw]


def _chain(g) -> list[str]:
    """Node names from the Input to the Output (the exporter writes chains)."""
    nxt = dict(g.edges)
    assert len(nxt) == len(g.edges), "not a chain"
    name, order = next(iter(g.inputs)), []
    while name is not None:
        order.append(name)
        name = nxt.get(name)
    assert order[-1] in g.outputs and len(order) == len(g.nodes)
    return order


def simulate(g, x: np.ndarray, dt: float, use_metadata: bool = True) -> dict[str, np.ndarray]:
    """Run NIR graph ``g`` on ``x [T, B, ...]``; ``{node name: [T, B, ...] output}`` in float64.

    Static nodes act on each step; LIF: ``v += dt/tau ((v_leak - v) + r I)``, IF: ``v += dt r I``,
    spike ``v > v_threshold``, then ``v = v_reset`` (NIR), or ``v -= v_th`` where the metadata says
    ``reset = "subtract"`` and ``use_metadata``. Membranes start at ``v_reset``.
    """
    order, nodes = _chain(g), g.nodes
    state, out = {}, {name: [] for name in order}
    for xt in x.astype(np.float64):
        h = xt
        for name in order:
            n = nodes[name]
            kind = type(n).__name__
            if kind == "Affine":
                h = h @ n.weight.T.astype(np.float64) + n.bias
            elif kind == "Linear":
                h = h @ n.weight.T.astype(np.float64)
            elif kind == "Conv2d":
                win = _windows(h, n.weight.shape[2:], n.stride, n.padding)
                h = np.einsum("bchwij,ocij->bohw", win, n.weight.astype(np.float64)) + n.bias[:, None, None]
            elif kind in ("SumPool2d", "AvgPool2d"):
                win = _windows(h, n.kernel_size, n.stride, n.padding)
                h = win.sum(axis=(4, 5)) / (1 if kind == "SumPool2d" else np.prod(n.kernel_size))
            elif kind == "Scale":
                h = h * n.scale
            elif kind == "Flatten":
                h = h.reshape(h.shape[0], *n.output_type["output"])
            elif kind in ("LIF", "IF"):
                v = state.get(name, np.broadcast_to(n.v_reset, h.shape).astype(np.float64))
                v = v + (dt / n.tau * ((n.v_leak - v) + n.r * h) if kind == "LIF" else dt * n.r * h)
                s = (v > n.v_threshold).astype(np.float64)
                if use_metadata and n.metadata.get("reset") == "subtract":
                    state[name] = v - s * float(n.metadata["v_th"])
                else:
                    state[name] = np.where(s > 0, n.v_reset, v)
                h = s
            elif kind not in ("Input", "Output"):
                raise NotImplementedError(kind)
            out[name].append(h)
    return {name: np.stack(v) for name, v in out.items()}


# ----------------------------------------------------------------------------- networks
def conv_pool(neuron=lambda: N.LIF(tau=2.0)) -> nn.Module:
    """Conv + BN (eval, non-trivial statistics) + average pooling (with and without padding: NIR AvgPool2d
    counting the padding, as torch does)."""
    torch.manual_seed(1)
    net = nn.Sequential(
        PerStep(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)), neuron(),
        PerStep(nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8)), neuron(),
        PerStep(nn.AvgPool2d(3, stride=2, padding=1), nn.Flatten()), nn.Linear(8 * 3 * 3, 10), neuron(),
    )
    trained_bn_stats(net)
    with torch.no_grad():
        net[5].weight.mul_(4.0)   # pooled spikes are weak currents: without this the last layer is silent
    return scale_weights(net, 4.0).eval()


NEURONS = {
    "lif-hard": lambda: N.LIF(tau=2.0),
    "lif-soft": lambda: N.LIF(tau=2.0, v_reset=None),
    "lif-no-decay-input": lambda: N.LIF(tau=3.0, v_th=0.7, decay_input=False),
    "lif-soft-no-decay-input": lambda: N.LIF(tau=1.5, v_reset=None, decay_input=False),
    "lif-vreset-neg": lambda: N.LIF(tau=1.5, v_th=1.2, v_reset=-0.3),
    "if-hard": lambda: N.IF(v_th=1.0),
    "if-soft": lambda: N.IF(v_th=1.0, v_reset=None),
    "plif-soft-no-decay-input": lambda: N.PLIF(init_tau=2.5, v_reset=None, decay_input=False),
}


def roundtrip(model, x, tmp_path):
    g = to_nir(model, x[:, :1], dt=DT)
    nir.write(tmp_path / "net.nir", g)
    return nir.read(tmp_path / "net.nir")


def assert_same_spikes(model, x, g):
    """Torch runs ``fold_batchnorm(model)`` (the weights the graph holds); every neuron node compared."""
    folded = fold_batchnorm(model)
    ref = torch_layers(folded, x)
    got = simulate(g, x.numpy(), DT)
    neurons = [k for k, n in g.nodes.items() if type(n).__name__ in ("LIF", "IF")]
    assert len(neurons) == sum(isinstance(m, (N.LIF, N.IF, N.PLIF)) for m in model.modules())
    for name, n in g.nodes.items():
        if name not in ref:
            continue
        want, have = ref[name].double().numpy(), got[name].reshape(T, len(x[0]), -1)
        if name in neurons:
            assert 0.01 < want.mean() < 0.99, f"{name}: firing rate {want.mean():.3f}, test would be vacuous"
            bad = np.argwhere(have != want)
            assert bad.size == 0, f"{name}: {len(bad)}/{want.size} spikes differ, first at (t, b, i) = {bad[0]}"
        else:   # currents: float32 torch vs float64 NIR, rounding only
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5, err_msg=name)


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("neuron", NEURONS.values(), ids=NEURONS.keys())
def test_mlp_spikes_equal_torch(neuron, tmp_path):
    model, x = mlp(neuron), fashion_input(B, T)
    assert_same_spikes(model, x, roundtrip(model, x, tmp_path))


@pytest.mark.parametrize("neuron", ["lif-hard", "lif-soft-no-decay-input", "if-soft", "plif-soft-no-decay-input"])
def test_conv_bn_pool_spikes_equal_torch(neuron, tmp_path):
    model, x = conv_pool(NEURONS[neuron]), fashion_input(B, T)
    g = roundtrip(model, x, tmp_path)
    kinds = [type(n).__name__ for n in g.nodes.values()]
    assert kinds.count("Conv2d") == 2 and kinds.count("AvgPool2d") == 2   # the padded one too
    assert_same_spikes(model, x, g)


def test_soft_reset_needs_the_metadata():
    """Without the metadata NIR's LIF resets to v_reset: a different network (so the metadata matters)."""
    model, x = mlp(NEURONS["lif-soft"]), fashion_input(B, T)
    g = to_nir(model, x, dt=DT)
    ref = torch_layers(model, x)["4"].numpy()
    assert (simulate(g, x.numpy(), DT)["4"].reshape(ref.shape) == ref).all()
    assert (simulate(g, x.numpy(), DT, use_metadata=False)["4"].reshape(ref.shape) != ref).any()


# ----------------------------------------------------------------------------- parameters
def test_lif_parameters_and_metadata(tmp_path):
    net = nn.Sequential(nn.Linear(4, 3), N.LIF(tau=3.0, v_th=0.7, v_reset=-0.2, decay_input=False),
                        nn.Linear(3, 2, bias=False), N.PLIF(init_tau=2.5, v_reset=None), nn.Linear(2, 2), N.IF())
    g = to_nir(net, dt=2e-3)               # example_input=None: the first Linear fixes the shape
    nir.write(tmp_path / "p.nir", g)
    g = nir.read(tmp_path / "p.nir")
    lif, plif, if_ = g.nodes["1"], g.nodes["3"], g.nodes["5"]
    assert type(lif).__name__ == "LIF" and type(g.nodes["2"]).__name__ == "Linear"
    np.testing.assert_allclose(lif.tau, [6e-3] * 3, rtol=1e-15)
    np.testing.assert_array_equal(lif.r, [3.0] * 3)                    # decay_input=False: r = tau_steps
    np.testing.assert_array_equal(lif.v_leak, [-0.2] * 3)
    np.testing.assert_array_equal(lif.v_reset, [-0.2] * 3)
    assert lif.v_threshold.dtype == np.float32 and (lif.v_threshold < np.float32(0.7)).all()
    assert (np.nextafter(lif.v_threshold, np.float32(1)) == np.float32(0.7)).all()
    assert lif.metadata["reset"] == "hard" and lif.metadata["tau_steps"] == 3.0 and not lif.metadata["decay_input"]
    learned = 1.0 / torch.sigmoid(net[3].w.detach().float()).item()
    np.testing.assert_allclose(plif.tau, [learned * 2e-3] * 2, rtol=1e-12)
    np.testing.assert_array_equal(plif.r, [1.0] * 2)                    # decay_input=True
    assert plif.metadata["neuron"] == "PLIF" and plif.metadata["reset"] == "subtract"
    assert plif.metadata["v_th"] == 1.0 and (plif.v_leak == 0).all()
    assert type(if_).__name__ == "IF" and np.allclose(if_.r, 1 / 2e-3)
    assert float(g.metadata["dt"]) == 2e-3


# ----------------------------------------------------------------------------- errors
def test_not_exportable_lists_every_problem():
    from spikeattn.layers.attention import SpikingSelfAttention

    net = nn.Sequential(PerStep(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), N.LIF(), nn.ReLU(),
                        PerStep(nn.Flatten()), nn.Linear(2 * 13 * 13, 16), SpikingSelfAttention(16, 2), N.LIF())
    with pytest.raises(NotExportable) as e:
        to_nir(net, torch.rand(2, 1, 1, 28, 28))
    problems = e.value.problems
    assert [(p, t) for p, t, _ in problems] == [("0.1", "MaxPool2d"), ("2", "ReLU"), ("5", "SpikingSelfAttention")]
    assert "max-pool" in problems[0][2] and "matmul" in problems[2][2]


def test_max_pool_alone_is_named():
    net = nn.Sequential(PerStep(nn.MaxPool2d(2), nn.Flatten()), nn.Linear(196, 4), N.LIF())
    with pytest.raises(NotExportable, match=r"0\.0 \(MaxPool2d\): NIR 1\.0 has no max-pool node"):
        to_nir(net, torch.rand(2, 1, 1, 28, 28))


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_spikformer_attention_named(attention):
    torch.manual_seed(0)
    model = spikformer("spikformer-mini-fmnist", depth=2, dim=16, heads=2, T=1, attention=attention).eval()
    with pytest.raises(NotExportable) as e:
        to_nir(model, torch.rand(1, 1, 1, 28, 28))
    by_path = {p: (t, why) for p, t, why in e.value.problems}
    for i in range(2):
        t, why = by_path[f"blocks.{i}.attn"]
        assert t == ("SpikingSelfAttention" if attention == "ssa" else "SpikeDrivenSelfAttention")
        assert ("no matmul node" if attention == "ssa" else "product of two spike tensors") in why
    assert by_path["embed.stages.0.pool.0"][0] == "MaxPool2d"
    assert len(e.value.problems) == len(by_path)   # each module once


def test_bad_arguments():
    with pytest.raises(ValueError, match="dt must be"):
        to_nir(mlp(), fashion_input(1, 1), dt=0)
    with pytest.raises(ValueError, match="example_input=None"):
        to_nir(nn.Sequential(PerStep(nn.Flatten()), nn.Linear(784, 4), N.LIF()))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        to_nir("net", fashion_input(1, 1))


def test_missing_nir_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)   # makes `import nir` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'spikeattn\[export\]'"):
        to_nir(mlp(), fashion_input(1, 1))
