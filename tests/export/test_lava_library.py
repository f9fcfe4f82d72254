"""``run_lava(..., fixed_point=True, library=True)``: Lava's own Dense / Conv / LIF processes (their
bit-accurate fixed-point models) give exactly the spikes of this runtime's integer kernels on every
library-mapped layer and step (real Fashion-MNIST images), and the library plan fits Lava's widths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikeattn.export import run_lava, to_lava
from tests.export.helpers import conv_bn, conv_bn_library, fashion_input, mlp, require_lava, torch_layers
from tests.export.test_lava_fixed import _runtime, rt  # noqa: F401  (fixture)
from tests.export.test_lava_spikformer import T, small_spikformer


def _graph(net, x, tmp_path, name):
    art = to_lava(net, tmp_path / name, x)
    return art, art.graph


def test_library_pairs(rt, tmp_path):  # noqa: F811
    """Graded first layers, soft reset and v_reset != 0 stay custom; spike-fed pairs go to Lava."""
    quantize, _ = rt
    x = fashion_input(1, 2)
    assert quantize.library_pairs(_graph(mlp(), x, tmp_path, "m")[1]) == {"3": "4"}
    assert quantize.library_pairs(_graph(conv_bn_library(), x, tmp_path, "c")[1]) == {"2.1": "3", "5": "6"}
    # conv_bn: the IF soft-resets; the last LIF (decay_input=False) is a pair
    assert quantize.library_pairs(_graph(conv_bn(), x, tmp_path, "s")[1]) == {"5": "6"}
    assert quantize.lif_why({"mode": 1, "decay": 2.0, "v_th": 1.0, "v_reset": None, "decay_input": True}) == "soft reset"
    assert "resets to 0" in quantize.lif_why({"mode": 1, "decay": 2.0, "v_th": 1.0, "v_reset": -0.5, "decay_input": True})
    assert "4095" in quantize.lif_why({"mode": 1, "decay": 1.0, "v_th": 1.0, "v_reset": 0.0, "decay_input": True})


def test_library_plan_fits_lava(rt, tmp_path):  # noqa: F811
    """Weights are one 8-bit synapse per group, vth = 64 k + 1 with k < 2^17 and k the threshold
    Lava fires above; the integer decision h >= vth is h * unit >= v_th up to one Lava vth step."""
    quantize, _ = rt
    art, graph = _graph(conv_bn_library(), fashion_input(1, 2), tmp_path, "c")
    with np.load(art.path / "weights.npz") as z:
        weights = {k: z[k] for k in z.files}
    q = quantize.plan(graph, weights, library=True)
    nodes = {n["name"]: n for n in graph["nodes"]}
    for syn, lif in quantize.library_pairs(graph).items():
        qs, ql = q[syn]["quant"], q[lif]["quant"]
        assert qs["library"] and np.abs(qs["w"]).max() <= 255 and not qs["b"].any()
        assert ql["shift"] == 6 and ql["wrap"] and ql["vth"] == 64 * ql["lava_vth"] + 1 and 0 <= ql["lava_vth"] < 2 ** 17
        assert np.abs(ql["bias_mant"]).max() <= 4096 and 0 <= ql["bias_exp"].min() and ql["bias_exp"].max() <= 7
        a = nodes[lif]["attrs"]
        gain = 1 / a["decay"] if (a["mode"] == 1 and a["decay_input"]) else 1.0
        unit = float(q[syn]["unit"]) * gain / 64                   # real value of one membrane unit
        assert ql["vth"] * unit >= a["v_th"] > (ql["vth"] - 65) * unit
        step = float(q[syn]["unit"]) / float(q[nodes[syn]["inputs"][0]]["unit"])
        assert np.log2(step) == int(np.log2(step))                  # one power-of-two step per layer


@given(st.integers(-(2 ** 26), 2 ** 26))
def test_wrap24_is_lavas_formula(rt, v):  # noqa: F811
    """Lava's fixed-point LIF current: ``u > 2^23 -> u - 2^24``, then ``<= -2^23 -> u + 2^24``."""
    _, kernels = rt
    m = 2 ** 23
    want = v - 2 * m if v > m else v
    want = v + 2 * m if want <= -m else want
    assert kernels.wrap24(np.array([v], np.int64))[0] == want


@pytest.mark.parametrize("make", [mlp, conv_bn_library], ids=["mlp", "conv_bn"])
def test_library_equals_custom_processes(make, tmp_path):
    """Every library-mapped neuron layer, every step, 4 real images: Lava's processes == our kernels
    (same plan); the run really used Lava's bit-accurate models; the plan still tracks torch."""
    require_lava()
    net, x = make(), fashion_input(4, 4)
    art = to_lava(net, tmp_path / "a", x)
    _, lib = run_lava(art, x.numpy(), fixed_point=True, library=True, return_layers=True)
    _, own = run_lava(art, x.numpy(), fixed_point=True, plan="library", return_layers=True)
    assert lib.library and not own.library
    ref = torch_layers(net, x)
    for name, models in lib.library.items():
        assert models.startswith("PyLifModelBitAcc + ") and ("PyDenseModelBitAcc" in models or "PyConvModelFixed" in models)
        np.testing.assert_array_equal(lib[name], own[name], err_msg=name)
        assert 0.03 < lib[name].mean() < 0.6, f"{name} fires {lib[name].mean():.3f}: the check would be weak"
        agree = (lib[name].reshape(ref[name].shape) == ref[name].numpy()).mean()
        assert agree >= 0.99, f"{name}: {agree:.4f} of spikes agree with torch"
    for n in art.graph["nodes"]:     # the custom neurons are the same run too
        if n["op"] == "lif":
            np.testing.assert_array_equal(lib[n["name"]], own[n["name"]])


@pytest.mark.parametrize("attention", ["ssa", pytest.param("sdsa", marks=pytest.mark.slow)])
def test_spikformer_runs_on_library(attention, tmp_path):
    """The Spikformer: stem convs and Q/K/V, projection and MLP layers on Lava's processes (token-wise
    Linear as a 1x1 Conv), attention, adds and pooling custom; equal to the custom run."""
    require_lava()
    model, x = small_spikformer(attention), fashion_input(1, T)
    art = to_lava(model, tmp_path / "sf", x)
    out, lib = run_lava(art, x.numpy(), fixed_point=True, library=True, return_layers=True, timeout=300)
    _, own = run_lava(art, x.numpy(), fixed_point=True, plan="library", return_layers=True, timeout=300)
    assert {"blocks.0.attn.qkv_lif", "blocks.0.mlp.lif1", "embed.rpe.lif"} <= set(lib.library)
    assert "embed.stages.0.lif" not in lib.library       # fed by graded pixels: custom
    missing = set(own) - set(lib)         # the synapses of the pairs run inside Lava's processes: not recorded
    ops = {n["name"]: n["op"] for n in art.graph["nodes"]}
    assert len(missing) == len(lib.library) and {ops[m] for m in missing} == {"linear", "conv2d"}
    for name in lib:
        np.testing.assert_array_equal(lib[name], own[name], err_msg=name)
    assert out.shape == (T, 1, 10)


def test_library_argument_errors(tmp_path):
    art = to_lava(mlp(), tmp_path / "a", fashion_input(1, 1))
    x = fashion_input(1, 1).numpy()
    with pytest.raises(ValueError, match="fixed_point=True"):
        run_lava(art, x, library=True)
    with pytest.raises(ValueError, match="per-channel"):
        run_lava(art, x, fixed_point=True, library=True, plan="default")
    with pytest.raises(ValueError, match="plan must be"):
        run_lava(art, x, fixed_point=True, plan="lava")
