"""``from_nir``: round trip through ``to_nir`` (bit-equal spikes at every layer and step), NIR's own
equations for files from other producers (checked against the float64 interpreter of test_nir.py),
``>`` vs ``>=`` at the threshold, DAGs with additions, dt resolution and errors."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import fold_batchnorm, from_nir, to_nir
from tests.export.helpers import fashion_input, mlp, scale_weights, torch_layers
from tests.export.test_nir import NEURONS, conv_pool

T, B = 4, 6


def assert_layers_equal(model, x, net):
    """Every module of ``fold_batchnorm(model)`` against the imported node of the same name, bit for bit."""
    ref, got = torch_layers(fold_batchnorm(model), x), net.trace(x)
    compared = 0
    for name, want in ref.items():
        if name in got:
            have = got[name].reshape(want.shape)
            bad = (have != want).nonzero()
            assert bad.numel() == 0, f"{name}: {len(bad)}/{want.numel()} values differ, first at {bad[0].tolist()}"
            compared += 1
    neurons = [p for p, m in model.named_modules() if isinstance(m, (N.LIF, N.IF, N.PLIF))]
    assert set(neurons) <= set(got) and compared >= len(neurons) + 2
    for p in neurons:
        assert 0.01 < ref[p].mean() < 0.99, f"{p}: firing rate {ref[p].mean():.3f}, test would be vacuous"


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("build", [mlp, conv_pool], ids=["mlp", "conv-bn-pool"])
@pytest.mark.parametrize("neuron", NEURONS.values(), ids=NEURONS.keys())
def test_roundtrip_spikes_equal(neuron, build, tmp_path):
    model, x = build(neuron), fashion_input(B, T)
    nir.write(tmp_path / "net.nir", to_nir(model, x[:, :1], dt=1e-3))
    net = from_nir(tmp_path / "net.nir")        # a path; dt comes from the file
    assert net.dt == 1e-3
    assert_layers_equal(model, x, net)


@settings(max_examples=25, deadline=None)
@given(tau=st.floats(1.1, 8.0), v_th=st.floats(0.3, 2.0), v_reset=st.one_of(st.none(), st.floats(-0.5, 0.2)),
       decay_input=st.booleans(), kind=st.sampled_from(["LIF", "IF", "PLIF"]), dt=st.sampled_from([1e-4, 1e-3, 0.37]))
def test_roundtrip_any_neuron_constants(tau, v_th, v_reset, decay_input, kind, dt):
    make = {"LIF": lambda: N.LIF(tau=tau, v_th=v_th, v_reset=v_reset, decay_input=decay_input),
            "IF": lambda: N.IF(v_th=v_th, v_reset=v_reset),
            "PLIF": lambda: N.PLIF(init_tau=tau, v_th=v_th, v_reset=v_reset, decay_input=decay_input)}[kind]
    torch.manual_seed(0)
    model = scale_weights(nn.Sequential(nn.Linear(20, 16), make(), nn.Linear(16, 8), make()), 3.0).eval()
    x = torch.rand(6, 5, 20)
    ref, got = torch_layers(model, x), from_nir(to_nir(model, dt=dt)).trace(x)
    for name in ("1", "3"):
        assert torch.equal(ref[name], got[name])


# ----------------------------------------------------------------------------- other producers: NIR's equations
def _graph(nodes: dict, edges=None, metadata=None):
    names = list(nodes)
    edges = edges or list(zip(names, names[1:]))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {})


def _lif_graph(n_in=12, n=10, seed=0):
    """Input -> Affine -> LIF with per-neuron tau, r, v_leak, v_reset, threshold (no spikeattn metadata)."""
    rng = np.random.default_rng(seed)
    f = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)   # noqa: E731
    return _graph({
        "input": nir.Input(input_type=np.array([n_in])),
        "fc": nir.Affine(weight=rng.normal(0, 1.5, (n, n_in)).astype(np.float32), bias=f(-0.2, 0.3)),
        "lif": nir.LIF(tau=f(2e-3, 8e-3), r=f(0.5, 3.0), v_leak=f(-0.3, 0.3), v_threshold=f(0.5, 1.5), v_reset=f(-0.5, 0.0)),
        "output": nir.Output(output_type=np.array([n])),
    })


def _euler(g, x, dt):
    """Independent float64 forward Euler of ``_lif_graph`` (membranes start at v_leak, as norse's)."""
    fc, lif = g.nodes["fc"], g.nodes["lif"]
    v, out = np.broadcast_to(lif.v_leak, (x.shape[1], lif.v_leak.size)).astype(np.float64), []
    for xt in x.astype(np.float64):
        i = xt @ fc.weight.T.astype(np.float64) + fc.bias
        v = v + dt / lif.tau * ((lif.v_leak - v) + lif.r * i)
        s = v > lif.v_threshold
        v = np.where(s, lif.v_reset, v)
        out.append(s.astype(np.float32))
    return np.stack(out)


def test_foreign_lif_follows_nir_equations():
    """Heterogeneous parameters: spikes equal a float64 interpreter of NIR's equations."""
    g, x = _lif_graph(), torch.rand(16, 7, 12)
    got = from_nir(g, dt=1e-3).trace(x)["lif"].detach().numpy()
    want = _euler(g, x.numpy(), 1e-3)
    assert 0.05 < want.mean() < 0.95
    np.testing.assert_array_equal(got, want)
    # the parameters matter: another dt gives other spikes
    assert (from_nir(g, dt=2e-3).trace(x)["lif"].detach().numpy() != want).any()


def test_threshold_is_strict_like_nir():
    """NIR fires on v > theta: a membrane exactly at theta stays silent, the next float32 above fires."""
    theta = np.float32(0.7)
    above = np.nextafter(theta, np.float32(np.inf))
    g = _graph({"input": nir.Input(input_type=np.array([3])),
                "if": nir.IF(r=np.full(3, 1e3), v_threshold=np.full(3, theta), v_reset=np.zeros(3)),
                "output": nir.Output(output_type=np.array([3]))})
    x = torch.tensor([[[float(theta), float(above), 0.0]]])   # dt * r = 1: v = x after one step
    assert from_nir(g, dt=1e-3)(x).tolist() == [[[0.0, 1.0, 0.0]]]
    thr = nir.Threshold(threshold=np.full(3, theta))
    g = _graph({"input": nir.Input(input_type=np.array([3])), "thr": thr, "output": nir.Output(output_type=np.array([3]))})
    assert from_nir(g)(x).tolist() == [[[0.0, 1.0, 0.0]]]


def test_our_threshold_is_inclusive_after_the_round_trip():
    """Ours fires on v >= v_th: the exported nextafter(v_th, -inf) maps back to exactly v_th."""
    net = from_nir(to_nir(nn.Sequential(nn.Linear(1, 1, bias=False), N.IF(v_th=0.7))))
    with torch.no_grad():
        net.nodes["0"].weight.fill_(1.0)
    x = torch.tensor([[[0.7]], [[0.0]]], dtype=torch.float32)
    assert net(x).flatten().tolist() == [1.0, 0.0]


def test_cuba_lif_with_full_current_decay_is_the_lif():
    g = _lif_graph()
    lif = g.nodes["lif"]
    w_in = np.full(10, 1.0, np.float32)
    g.nodes["lif"] = nir.CubaLIF(tau_syn=np.full(10, 1e-3), tau_mem=lif.tau, r=lif.r, v_leak=lif.v_leak,
                                 v_threshold=lif.v_threshold, v_reset=lif.v_reset, w_in=w_in)
    x = torch.rand(16, 7, 12)
    np.testing.assert_array_equal(from_nir(g, dt=1e-3).trace(x)["lif"].detach().numpy(), _euler(_lif_graph(), x.numpy(), 1e-3))


def test_cuba_lif_with_lasting_current_is_refused_by_name():
    g = _lif_graph()
    lif = g.nodes["lif"]
    g.nodes["lif"] = nir.CubaLIF(tau_syn=np.full(10, 2e-3), tau_mem=lif.tau, r=lif.r, v_leak=lif.v_leak,
                                 v_threshold=lif.v_threshold)
    with pytest.raises(NotImplementedError, match=r"'lif' \(CubaLIF\).*dt / tau_syn = 0\.5"):
        from_nir(g, dt=1e-3)


# ----------------------------------------------------------------------------- graphs
def test_dag_sums_incoming_edges():
    """Two Affine branches into one IF: NIR sums them. Integer weights and inputs: the sum is exact."""
    rng = np.random.default_rng(1)
    wa, wb = (rng.integers(-2, 3, (5, 4)).astype(np.float32) for _ in range(2))
    node = lambda: nir.IF(r=np.full(5, 1.0), v_threshold=np.full(5, 1.5), v_reset=np.zeros(5))   # noqa: E731
    dag = _graph({"input": nir.Input(input_type=np.array([4])), "a": nir.Linear(weight=wa), "b": nir.Linear(weight=wb),
                  "if": node(), "output": nir.Output(output_type=np.array([5]))},
                 edges=[("input", "a"), ("input", "b"), ("a", "if"), ("b", "if"), ("if", "output")])
    chain = _graph({"input": nir.Input(input_type=np.array([4])), "ab": nir.Linear(weight=wa + wb), "if": node(),
                    "output": nir.Output(output_type=np.array([5]))})
    x = torch.from_numpy(rng.integers(0, 2, (8, 3, 4)).astype(np.float32))
    got, want = from_nir(dag, dt=1.0)(x).detach(), from_nir(chain, dt=1.0)(x).detach()
    assert 0.05 < want.mean() < 0.95 and torch.equal(got, want)


def test_flatten_dims_are_per_sample():
    """NIR's Flatten(start_dim=0) is batch-free: our [T, B, C, H, W] flattens from dim 2 (batch > 1 works)."""
    g = _graph({"input": nir.Input(input_type=np.array([2, 3, 3])),
                "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
                "fc": nir.Linear(weight=np.ones((1, 18), np.float32)),
                "output": nir.Output(output_type=np.array([1]))})
    x = torch.rand(2, 5, 2, 3, 3)
    np.testing.assert_allclose(from_nir(g)(x).detach()[..., 0], x.sum(dim=(2, 3, 4)), rtol=1e-6)


def test_pooling_nodes():
    x = torch.rand(2, 3, 1, 4, 4)
    pools = {"sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1])),
             "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1]))}
    ref = torch.nn.functional.avg_pool2d(x.flatten(0, 1), 2, 2, 1, count_include_pad=True).reshape(2, 3, 1, 3, 3)
    for kind, node in pools.items():
        g = _graph({"input": nir.Input(input_type=np.array([1, 4, 4])), "p": node,
                    "output": nir.Output(output_type=np.array([1, 3, 3]))})
        np.testing.assert_allclose(from_nir(g)(x).detach(), ref * (4 if kind == "sum" else 1), rtol=1e-6)


# ----------------------------------------------------------------------------- dt
def test_dt_from_graph_metadata_then_nodes_then_argument_then_default():
    g = _lif_graph()
    assert from_nir(g).dt == 1e-4                                 # snntorch's assumption
    assert from_nir(g, dt=2e-3).dt == 2e-3
    g.nodes["lif"].metadata = {"dt": 5e-4}
    assert from_nir(g).dt == 5e-4
    g.metadata = {"dt": 5e-4}
    assert from_nir(g, dt=5e-4).dt == 5e-4
    with pytest.raises(ValueError, match=r"dt=0\.001 contradicts the file's graph metadata dt=0\.0005"):
        from_nir(g, dt=1e-3)


def test_export_writes_dt_in_graph_and_neuron_metadata(tmp_path):
    nir.write(tmp_path / "m.nir", to_nir(mlp(), fashion_input(1, 1), dt=2e-4))
    g = nir.read(tmp_path / "m.nir")
    assert float(g.metadata["dt"]) == 2e-4
    neurons = [n for n in g.nodes.values() if type(n).__name__ in ("LIF", "IF")]
    assert len(neurons) == 2 and all(float(n.metadata["dt"]) == 2e-4 for n in neurons)


# ----------------------------------------------------------------------------- errors
def test_unmapped_node_is_named():
    g = _lif_graph()
    g.nodes["lif"] = nir.LI(tau=np.full(10, 1e-3), r=np.ones(10), v_leak=np.zeros(10))
    with pytest.raises(NotImplementedError, match=r"'lif' \(LI\)"):
        from_nir(g)


def test_recurrent_graph_is_refused():
    g = _lif_graph()
    g.nodes["rec"] = nir.Linear(weight=np.eye(10, dtype=np.float32))
    g.edges += [("lif", "rec"), ("rec", "lif")]
    with pytest.raises(NotImplementedError, match=r"recurrent loop \(nodes in or after it: \['lif', 'output', 'rec'\]"):
        from_nir(g)


def test_bad_arguments():
    g = _lif_graph()
    with pytest.raises(TypeError, match="graph_or_path must be"):
        from_nir(42)
    with pytest.raises(ValueError, match="dt must be"):
        from_nir(g, dt=-1.0)
    with pytest.raises(ValueError, match=r"per-sample shape must be \(12,\)"):
        from_nir(g)(torch.rand(2, 3, 11))
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        from_nir(g)(torch.rand(3, 12))


def test_metadata_that_contradicts_the_node_is_refused():
    g = to_nir(mlp(NEURONS["lif-soft"]), fashion_input(1, 1), dt=1e-3)
    g.nodes["2"].tau = g.nodes["2"].tau * 2          # edited after export: metadata still says tau_steps = 2
    with pytest.raises(ValueError, match=r"NIR node '2'.*implies tau = 0\.002"):
        from_nir(g)
    g.nodes["2"].metadata = {}                        # without it: NIR's equations (hard reset), no error
    assert type(from_nir(g).nodes["2"]).__name__ == "NIRNeuron"


def test_imported_net_trains():
    """Surrogate gradients reach the imported weights through both neuron forms."""
    for g in (to_nir(mlp(), fashion_input(1, 1)), _lif_graph()):
        net = from_nir(g)
        x = fashion_input(2, 3) if "0.0" in g.nodes else torch.rand(3, 2, 12)
        net(x).sum().backward()
        grads = [p.grad for p in net.parameters()]
        assert grads and all(gr is not None and gr.abs().sum() > 0 for gr in grads)


def test_node_names_that_sanitize_alike_stay_apart():
    """"a.b" and "a_b" both become module key "a_b" unless made unique: each node keeps its own module."""
    g = _graph({"input": nir.Input(input_type=np.array([2])), "a.b": nir.Linear(weight=np.eye(2, dtype=np.float32) * 2),
                "a_b": nir.Linear(weight=np.eye(2, dtype=np.float32) * 3), "output": nir.Output(output_type=np.array([2]))})
    net = from_nir(g)
    assert len(set(net.keys.values())) == 4
    assert torch.equal(net(torch.ones(1, 1, 2)).detach(), torch.full((1, 1, 2), 6.0))


def test_node_without_input_is_named():
    g = _lif_graph()
    g.nodes["orphan"] = nir.Linear(weight=np.eye(10, dtype=np.float32))
    g.edges.append(("orphan", "output"))
    with pytest.raises(ValueError, match=r"node\(s\) \['orphan'\] get no input"):
        from_nir(g)
