"""Fixed point (Loihi-style integers): the quantized numbers reconstruct the float ones within their
stated error and fit Loihi's widths; on real images the integer kernels agree with torch spike for
spike to >= 99% (numpy only, no Lava needed); and Lava's fixed-point run is those kernels, bit for bit.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spikeattn._paths import runtime_module
from spikeattn.export import run_lava, to_lava
from spikeattn.export.artifact import write
from spikeattn.export.spikformer import fold_spikformer, spikformer_graph
from tests.export.helpers import fashion_input, mlp, require_lava, torch_layers
from tests.export.test_lava_spikformer import T, neuron_traces, small_spikformer


_runtime = runtime_module   # the torch-free runtime's numpy modules, loaded by path


@pytest.fixture(scope="module")
def rt():
    """``(quantize, kernels)``; kernels imports ``ops_float`` by its bare name, as in the runtime."""
    quantize, ops_float = _runtime("quantize"), _runtime("ops_float")
    saved = sys.modules.get("ops_float")
    sys.modules["ops_float"] = ops_float
    try:
        kernels = _runtime("kernels")
    finally:
        if saved is None:
            sys.modules.pop("ops_float")
        else:
            sys.modules["ops_float"] = saved
    return quantize, kernels


def simulate_fixed(graph, weights, x, kernels, quantize, **plan_kw):
    """The fixed-point kernels of every node, step by step, without Lava (delays do not change
    values: the runtime realigns them). Returns ``{node: [T, B, ...] real values}``."""
    q = quantize.plan(graph, weights, **plan_kw)
    ks = {n["name"]: kernels.make_kernel({"op": n["op"], "attrs": n.get("attrs", {}), "quant": q[n["name"]]["quant"],
                                          "weights": {k: weights[v] for k, v in n.get("params", {}).items()}}, "fixed")
          for n in graph["nodes"][1:]}
    vals, rec = {}, {n["name"]: [] for n in graph["nodes"]}
    for t in range(x.shape[0]):
        for n in graph["nodes"]:
            name = n["name"]
            vals[name] = (np.round(x[t] / q[name]["unit"]).astype(np.int64) if n["op"] == "input"
                          else ks[name](*[vals[i] for i in n["inputs"]]))
            rec[name].append(vals[name])
    return {k: np.stack(v) * q[k]["unit"] for k, v in rec.items()}, q


@pytest.mark.parametrize("synapses", [1, 2])
@pytest.mark.parametrize("per_channel", [True, False])
def test_weights_reconstruct_within_half_a_step(rt, synapses, per_channel):
    quantize, _ = rt
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 4, 3, 3)) * np.array([1e-3, 0.01, 0.1, 1, 5, 0])[:, None, None, None]
    w_int, step = quantize.quantize_weights(w, per_channel=per_channel, synapses=synapses)
    top = quantize.w_max(synapses)
    assert top == (255 if synapses == 1 else 65535)   # sign (E/I group) + 8 or 16 bits
    assert w_int.dtype == np.int64 and np.abs(w_int).max() <= top
    err = np.abs(w_int * step[:, None, None, None] - w)
    assert (err <= step[:, None, None, None] / 2 * (1 + 1e-9)).all()
    if per_channel:   # every nonzero channel uses its whole mantissa range
        assert (np.abs(w_int[:5]).reshape(5, -1).max(1) == top).all()
    else:             # one power-of-two step (Loihi weight_exp) for the layer
        assert len(set(step)) == 1 and float(np.log2(step[0])).is_integer()
        assert np.abs(w_int).max() > top // 2
    # relative to the largest channel: 8 bits -> <= 0.2% (0.4% with a power-of-two step), 16 bits -> 0.001%
    assert err[4].max() / np.abs(w[4]).max() <= 0.5 / top * (1 + 1e-9) * (1 if per_channel else 2)


def test_synapses_are_8_bit_each(rt):
    """Each part is an 8-bit weight of the excitatory or inhibitory group: magnitude <= 255,
    the sign of the connection; the exponent-shifted parts add up to the mantissa."""
    quantize, _ = rt
    w_int = np.arange(-65535, 65536, 7, dtype=np.int64)
    parts = quantize.split_synapses(w_int, 2)
    assert [e for _, e in parts] == [8, 0]
    for part, _ in parts:
        assert np.abs(part).max() == 255 and ((np.sign(part) == np.sign(w_int)) | (part == 0)).all()
    np.testing.assert_array_equal(sum(part << e for part, e in parts), w_int)
    (one, e), = quantize.split_synapses(np.array([-255, 0, 255]), 1)
    assert e == 0 and one.tolist() == [-255, 0, 255]
    with pytest.raises(ValueError, match="w_int"):
        quantize.split_synapses(np.array([256]), 1)
    with pytest.raises(ValueError, match="synapses"):
        quantize.w_max(3)


def test_bias_is_13_bit_mantissa_3_bit_exponent(rt):
    quantize, _ = rt
    b = np.array([0.0, 1.4, -4096.6, 4095.2, 1e5, -3e5, 5.2e5])
    mant, exp = quantize.quantize_bias(b)
    assert mant.min() >= -4096 and mant.max() <= 4095 and exp.min() >= 0 and exp.max() <= 7
    assert (np.abs((mant << exp) - b) <= 2.0 ** exp / 2 + 1e-9).all()


def test_threshold_rounds_up_and_is_17_bit(rt):
    """``h_int >= vth_int`` must be ``h >= v_th`` for every represented ``h``: vth_int is the
    smallest integer whose real value reaches v_th; and it fits Lava's 17-bit vth."""
    quantize, _ = rt
    graph, weights = _linear_lif(np.random.default_rng(1), v_th=0.7, tau=2.0)
    q = quantize.plan(graph, weights, kind="per_channel")
    vth, shift = q["lif"]["quant"]["vth"], np.asarray(q["lif"]["quant"]["shift"])
    real_unit = np.asarray(q["fc"]["unit"]) * 0.5 * 2.0 ** -shift    # x/tau, then the shift
    assert vth.shape == (8,) and (vth >= 2 ** 16).all() and (vth < 2 ** 17).all()
    assert (vth * real_unit >= 0.7).all() and ((vth - 1) * real_unit < 0.7).all()
    assert q["lif"]["unit"] == 1.0 and np.shape(q["fc"]["unit"]) == (8,)


def _linear_lif(rng, v_th, tau):
    w = rng.normal(size=(8, 20)) * np.geomspace(0.01, 1.0, 8)[:, None]   # channels 100x apart
    graph = {"input_unit": 1.0, "output": "lif", "nodes": [
        {"name": "input", "op": "input", "inputs": [], "shape": [20]},
        {"name": "fc", "op": "linear", "inputs": ["input"], "shape": [8], "params": {"weight": "w", "bias": "b"}},
        {"name": "lif", "op": "lif", "inputs": ["fc"], "shape": [8],
         "attrs": {"mode": 1, "decay": tau, "v_th": v_th, "v_reset": 0.0, "decay_input": True}}]}
    return graph, {"w": w.astype(np.float32), "b": (rng.normal(size=8) * 0.05).astype(np.float32)}


def test_flips_only_within_the_quantization_error(rt):
    """One step of linear -> LIF on random spikes, per-channel plan: fixed and float decide alike
    except where the membrane is within the weights' stated error of the threshold (and per-channel
    scales make the small channels as exact as the large one)."""
    quantize, kernels = rt
    rng = np.random.default_rng(2)
    graph, weights = _linear_lif(rng, v_th=0.3, tau=2.0)
    x = (rng.random((1, 4000, 20)) < 0.3).astype(np.float32)
    h = (x[0] @ weights["w"].T.astype(np.float64) + weights["b"]) / 2.0   # the float membrane
    for synapses in (1, 2):
        got, q = simulate_fixed(graph, weights, x, kernels, quantize, kind="per_channel", synapses=synapses)
        step = np.asarray(q["fc"]["unit"])                                  # per-channel weight step
        bound = (x[0].sum(1, keepdims=True) * step / 2 + step) / 2          # weights + bias, then x/tau
        flips = got["lif"][0] != (h >= 0.3)
        assert flips.mean() < (0.01 if synapses == 1 else 1e-4)
        assert (np.abs(h - 0.3)[flips] <= bound[flips]).all()
        assert 0.1 < (h >= 0.3).mean() < 0.9


def test_spikformer_fixed_point_agrees_with_torch(rt):
    """Real images through a small Spikformer (T=2: the 12-bit decay matters), numpy kernels:
    >= 99% of all spikes equal with the per-channel plan's 16-bit weights (two synapses), fewer
    with one 8-bit synapse (so the check measures the weights), and the default (library) plan,
    8-bit weights with one step per layer, a little below the latter; the quantized logits stay close."""
    quantize, kernels = rt
    folded = fold_spikformer(small_spikformer("ssa"))
    x = fashion_input(6, T)
    graph, arrays = spikformer_graph(folded, x)
    ref, logits = neuron_traces(folded, x)
    agree = {}
    for kind, synapses in (("per_channel", 2), ("per_channel", 1), ("library", 1)):
        got, _ = simulate_fixed(graph, arrays, x.numpy(), kernels, quantize, kind=kind, synapses=synapses)
        eq = [got[k].reshape(v.shape) == v for k, v in ref.items()]
        agree[kind, synapses] = sum(e.sum() for e in eq) / sum(e.size for e in eq)
        if synapses == 2:
            assert min(e.mean() for e in eq) >= 0.98
            np.testing.assert_allclose(got["head"].mean(0), logits.numpy(), atol=0.1)
    assert agree["per_channel", 2] >= 0.99, agree
    assert agree["per_channel", 1] < agree["per_channel", 2], agree   # the 8-bit weights lose spikes: the check can see them
    assert agree["library", 1] >= 0.93, agree   # one step per layer: the small channels of this untrained net lose more


def test_lava_fixed_point_is_the_kernels(rt, tmp_path):
    """Lava's fixed-point run of the small Spikformer equals the numpy kernels bit for bit (the
    runtime's processes, delays and FIFOs add nothing), for the default plan and the per-channel
    one with either synapse setting."""
    require_lava()
    quantize, kernels = rt
    folded = fold_spikformer(small_spikformer("ssa"))
    x = fashion_input(3, T)
    graph, arrays = spikformer_graph(folded, x)
    art = write(tmp_path / "net", graph, arrays)
    for kind, synapses in (("library", None), ("per_channel", None), ("per_channel", 1)):
        want, _ = simulate_fixed(graph, arrays, x.numpy(), kernels, quantize, kind=kind, synapses=synapses)
        _, layers = run_lava(art, x.numpy(), fixed_point=True, return_layers=True, plan=kind, weight_synapses=synapses)
        for n in graph["nodes"][1:]:
            np.testing.assert_allclose(layers[n["name"]], want[n["name"]].astype(np.float32), rtol=1e-6,
                                       err_msg=f"{n['name']} ({kind}, {synapses} synapse(s))")


def test_mlp_fixed_point_agreement(tmp_path):
    require_lava()
    net, x = mlp(), fashion_input(6, 4)
    art = to_lava(net, tmp_path / "a", x)
    _, layers = run_lava(art, x.numpy(), fixed_point=True, return_layers=True)
    ref = torch_layers(net, x)
    for n in art.graph["nodes"]:
        if n["op"] == "lif":
            agree = (layers[n["name"]].reshape(ref[n["name"]].shape) == ref[n["name"]].numpy()).mean()
            assert agree >= 0.99, f"{n['name']}: {agree:.4f} of spikes agree in fixed point"
