"""``run_lava(..., fixed_point=True, library=True)``: Lava's own Dense / Conv / LIF processes (their
bit-accurate fixed-point models) give exactly the spikes of this runtime's integer kernels on every
library-mapped layer and step (real Fashion-MNIST images), and the library plan fits Lava's widths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from spikeattn.export import loihi_report, run_lava, to_lava
from spikeattn.export.lava import PLANS
from spikeattn.models import spikformer
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
    """The default plan on every library pair: weights are one 8-bit synapse per group, vth = 64 k + 1
    with k < 2^17 the threshold Lava fires above, and v_th is exactly k weight steps (one real step per
    layer, folded into the one threshold), so the integer decision h >= vth is h * unit >= v_th up to
    1/64 of a weight step; the weights use their 8 bits."""
    quantize, _ = rt
    art, graph = _graph(conv_bn_library(), fashion_input(1, 2), tmp_path, "c")
    with np.load(art.path / "weights.npz") as z:
        weights = {k: z[k] for k in z.files}
    q = quantize.plan(graph, weights)
    nodes = {n["name"]: n for n in graph["nodes"]}
    pairs = quantize.library_pairs(graph)
    assert pairs
    for syn, lif in pairs.items():
        qs, ql = q[syn]["quant"], q[lif]["quant"]
        assert qs["library"] and np.abs(qs["w"]).max() <= 255 and not qs["b"].any()
        assert ql["shift"] == 6 and ql["wrap"] and ql["vth"] == 64 * ql["lava_vth"] + 1 and 0 < ql["lava_vth"] < 2 ** 17
        assert np.abs(ql["bias_mant"]).max() <= 4096 and 0 <= ql["bias_exp"].min() and ql["bias_exp"].max() <= 7
        a = nodes[lif]["attrs"]
        gain = 1 / a["decay"] if (a["mode"] == 1 and a["decay_input"]) else 1.0
        unit = float(q[syn]["unit"]) * gain / 64                   # real value of one membrane unit
        assert ql["vth"] * unit >= a["v_th"] > (ql["vth"] - 2) * unit
        assert np.isclose(64 * ql["lava_vth"] * unit, a["v_th"], rtol=1e-12)   # v_th = k weight steps
        k = ql["lava_vth"]
        assert np.abs(qs["w"]).max() >= 255 * k / (k + 1) - 0.5       # the finest step that fits 8 bits
        w_real = weights[nodes[syn]["params"]["weight"]].astype(np.float64)
        step = float(q[syn]["unit"]) / float(q[nodes[syn]["inputs"][0]]["unit"])
        assert np.abs(qs["w"] * step - w_real).max() <= step / 2 * (1 + 1e-9)   # one scalar step per layer


def test_per_channel_plan_is_not_the_default(rt, tmp_path):  # noqa: F811
    """plan(kind="per_channel") folds per-channel scales into per-channel thresholds (no library form)."""
    quantize, _ = rt
    art, graph = _graph(mlp(), fashion_input(1, 2), tmp_path, "m")
    with np.load(art.path / "weights.npz") as z:
        weights = {k: z[k] for k in z.files}
    wide = quantize.plan(graph, weights, kind="per_channel")
    assert np.shape(wide["4"]["quant"]["vth"]) == (10,) and "library" not in wide["3"]["quant"]
    assert np.shape(quantize.plan(graph, weights)["4"]["quant"]["vth"]) == ()
    with pytest.raises(ValueError, match="plan must be one of"):
        quantize.plan(graph, weights, kind="default")
    assert quantize.PLAN_SYNAPSES == PLANS and quantize.PLANS == tuple(PLANS)   # run_lava's copy of the names


@given(peak=st.floats(1e-6, 1e3), v_th=st.floats(1e-3, 10.0), decay=st.sampled_from([1.5, 2.0, 4.0]),
       decay_input=st.booleans(), in_unit=st.sampled_from([1.0, 0.25]))
def test_plan_pair_fits_lava_for_any_scale(rt, peak, v_th, decay, decay_input, in_unit):  # noqa: F811
    """Any weight scale and threshold: 8-bit weights within half a step, Lava's 17-bit vth, and v_th a
    whole number k of steps whenever the largest weight's step is below the threshold (else one step)."""
    quantize, _ = rt
    w = np.random.default_rng(0).uniform(-1, 1, (5, 7))
    w *= peak / np.abs(w).max()
    syn = {"name": "fc", "op": "linear", "shape": [5]}
    lif = {"name": "lif", "attrs": {"mode": 1, "decay": decay, "v_th": v_th, "v_reset": 0.0, "decay_input": decay_input}}
    qs, unit, ql = quantize.plan_pair(syn, lif, {"weight": w}, in_unit)
    step = unit / in_unit
    k = ql["lava_vth"]
    assert np.abs(qs["w"]).max() <= 255 and np.abs(qs["w"] * step - w).max() <= step / 2 * (1 + 1e-9)
    assert 0 <= k <= 2 ** 17 - 1 and ql["vth"] == 64 * k + 1
    gain = 1 / decay if decay_input else 1.0
    if gain * in_unit * peak / 255 <= v_th * (1 - 1e-9):
        assert np.isclose(k * unit * gain, v_th, rtol=1e-9)
        if k < 2 ** 17 - 1:    # else k is clamped to Lava's largest vth and the step grows
            assert np.abs(qs["w"]).max() >= 255 * k / (k + 1) - 0.5    # the finest such step
    else:                      # a threshold below one step: Lava fires above k << 6, k in {0, 1}
        membrane = unit * gain / 64
        assert k <= 1 and (64 * k + 1) * membrane >= v_th * (1 - 1e-9) > (64 * k - 64) * membrane


@given(st.integers(-(2 ** 26), 2 ** 26))
def test_wrap24_is_lavas_formula(rt, v):  # noqa: F811
    """Lava's fixed-point LIF current: ``u > 2^23 -> u - 2^24``, then ``<= -2^23 -> u + 2^24``."""
    _, kernels = rt
    m = 2 ** 23
    want = v - 2 * m if v > m else v
    want = v + 2 * m if want <= -m else want
    assert kernels.wrap24(np.array([v], np.int64))[0] == want


@pytest.mark.parametrize(("make", "plans_split_spikes"), [(mlp, False), (conv_bn_library, True)], ids=["mlp", "conv_bn"])
def test_library_equals_custom_processes(make, plans_split_spikes, tmp_path):
    """Default arguments, every library-mapped neuron layer, every step, 4 real images: Lava's own
    processes (library=True) == this runtime's kernels (library=False); the run really used Lava's
    bit-accurate models; the default plan still tracks torch. The per-channel plan (the default
    before) feeds every library layer other currents and, in the conv net (228 of its spikes), other
    spikes, so the equality is the default plan's doing (the MLP's 10-neuron layer happens to agree)."""
    require_lava()
    net, x = make(), fashion_input(4, 4)
    art = to_lava(net, tmp_path / "a", x)
    _, lib = run_lava(art, x.numpy(), fixed_point=True, library=True, return_layers=True)
    _, own = run_lava(art, x.numpy(), fixed_point=True, library=False, return_layers=True)
    _, wide = run_lava(art, x.numpy(), fixed_point=True, plan="per_channel", return_layers=True)
    assert lib.library and not own.library
    ref = torch_layers(net, x)
    for name, models in lib.library.items():
        assert models.startswith("PyLifModelBitAcc + ") and ("PyDenseModelBitAcc" in models or "PyConvModelFixed" in models)
        np.testing.assert_array_equal(lib[name], own[name], err_msg=name)
        assert 0.03 < lib[name].mean() < 0.6, f"{name} fires {lib[name].mean():.3f}: the check would be weak"
        agree = (lib[name].reshape(ref[name].shape) == ref[name].numpy()).mean()
        assert agree >= 0.99, f"{name}: {agree:.4f} of spikes agree with torch"
    synapses = set(own) - set(lib)        # recorded by the custom runs only: Lava's processes hold them
    assert synapses and all(not np.array_equal(own[syn], wide[syn]) for syn in synapses)
    assert any(not np.array_equal(lib[name], wide[name]) for name in lib.library) == plans_split_spikes
    for n in art.graph["nodes"]:     # the custom neurons are the same run too
        if n["op"] == "lif":
            np.testing.assert_array_equal(lib[n["name"]], own[n["name"]])


@pytest.mark.parametrize("attention", ["ssa", pytest.param("sdsa", marks=pytest.mark.slow)])
def test_spikformer_runs_on_library(attention, tmp_path):
    """The Spikformer with default arguments: stem convs and Q/K/V, projection and MLP layers on
    Lava's processes (token-wise Linear as a 1x1 Conv), attention, adds and pooling custom and
    listed off-library by the report; every recorded node equal to the library=False run."""
    require_lava()
    model, x = small_spikformer(attention), fashion_input(1, T)
    art = to_lava(model, tmp_path / "sf", x)
    out, lib = run_lava(art, x.numpy(), fixed_point=True, library=True, return_layers=True, timeout=300)
    _, own = run_lava(art, x.numpy(), fixed_point=True, return_layers=True, timeout=300)
    assert {"blocks.0.attn.qkv_lif", "blocks.0.mlp.lif1", "embed.rpe.lif"} <= set(lib.library)
    assert "embed.stages.0.lif" not in lib.library       # fed by graded pixels: custom
    missing = set(own) - set(lib)         # the synapses of the pairs run inside Lava's processes: not recorded
    ops = {n["name"]: n["op"] for n in art.graph["nodes"]}
    assert len(missing) == len(lib.library) and {ops[m] for m in missing} == {"linear", "conv2d"}
    for name in lib:
        np.testing.assert_array_equal(lib[name], own[name], err_msg=name)
    assert out.shape == (T, 1, 10)
    off = {o["name"]: o for o in loihi_report(art, profile="loihi2").off_library}
    custom = {n for n, op in ops.items() if op == "lif" and n not in lib.library}
    assert custom and custom <= set(off) and all(off[n]["why"] for n in custom)
    assert "embed.stages.0.lif" in custom and any(n.startswith("blocks.0.attn.") for n in custom)   # the attention neuron


def test_library_argument_errors(tmp_path):
    art = to_lava(mlp(), tmp_path / "a", fashion_input(1, 1))
    x = fashion_input(1, 1).numpy()
    with pytest.raises(ValueError, match="fixed_point=True"):
        run_lava(art, x, library=True)
    with pytest.raises(ValueError, match="per_channel' cannot run on Lava's library processes: Lava's LIF has one vth"):
        run_lava(art, x, fixed_point=True, library=True, plan="per_channel")
    with pytest.raises(ValueError, match="fixed-point plan"):
        run_lava(art, x, plan="per_channel")
    for old in ("default", "auto", "lava"):
        with pytest.raises(ValueError, match="plan must be one of"):
            run_lava(art, x, fixed_point=True, plan=old)


def test_cli_lava_run_plans(tmp_path):
    """`spikeattn lava-run` passes --library / --plan / --weight-synapses on, and refuses what run_lava refuses."""
    from spikeattn.cli import main

    art = to_lava(mlp(), tmp_path / "a", fashion_input(1, 1))
    np.save(tmp_path / "x.npy", fashion_input(2, 4).numpy())
    with pytest.raises(SystemExit, match="per_channel' cannot run on Lava's library processes"):
        main(["lava-run", str(art.path), "--input", str(tmp_path / "x.npy"), "--fixed-point", "--library",
              "--plan", "per_channel"])
    with pytest.raises(SystemExit, match="needs fixed_point=True"):
        main(["lava-run", str(art.path), "--input", str(tmp_path / "x.npy"), "--library"])
    with pytest.raises(SystemExit, match="plan must be one of"):
        main(["lava-run", str(art.path), "--input", str(tmp_path / "x.npy"), "--fixed-point", "--plan", "default"])
    require_lava()
    main(["lava-run", str(art.path), "--input", str(tmp_path / "x.npy"), "--fixed-point", "--library",
          "--out", str(tmp_path / "y.npy")])
    out = np.load(tmp_path / "y.npy")
    assert out.any()
    np.testing.assert_array_equal(out, run_lava(art, np.load(tmp_path / "x.npy"), fixed_point=True))


def demo_spikformer() -> nn.Module:
    """The demo's preset (spikformer-mini-fmnist: 2 blocks, dim 64, T=1), BN statistics calibrated on
    16 real images as after training, so its layers fire."""
    torch.manual_seed(4)
    model = spikformer("spikformer-mini-fmnist")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.momentum = None                          # cumulative average over the calibration pass
    with torch.no_grad():
        model.train()(fashion_input(16, 1)[0])
        for bn in bns:
            bn.bias.uniform_(0.2, 0.8)
    return model.eval()


def test_demo_spikformer_on_library(tmp_path):
    """The demo Spikformer (its preset) with library=True: 12 of its 15 neuron layers on Lava's
    bit-accurate LIF fed by Lava's Conv; what stays custom is in the report's off-library list
    with its reason; every recorded node equals the library=False run (default arguments)."""
    require_lava()
    model, x = demo_spikformer(), fashion_input(1, 1)
    art = to_lava(model, tmp_path / "demo", x)
    _, lib = run_lava(art, x.numpy(), fixed_point=True, library=True, return_layers=True, timeout=600)
    _, own = run_lava(art, x.numpy(), fixed_point=True, return_layers=True, timeout=600)
    lifs = [n["name"] for n in art.graph["nodes"] if n["op"] == "lif"]
    assert len(lifs) == 15 and len(lib.library) == 12
    assert all(m == "PyLifModelBitAcc + PyConvModelFixed + PyConvModelFixed" for m in lib.library.values())
    off = {o["name"]: o["why"] for o in loihi_report(art, profile="loihi2").off_library}
    custom = sorted(set(lifs) - set(lib.library))
    assert custom == ["blocks.0.attn.attn_lif", "blocks.1.attn.attn_lif", "embed.stages.0.lif"]
    assert all(off[n] for n in custom) and "graded" in off["embed.stages.0.lif"]
    for name in lib:
        np.testing.assert_array_equal(lib[name], own[name], err_msg=name)
    rates = [lib[n].mean() for n in lib.library]
    assert min(rates) > 0.01, rates        # every library layer fires: the equality is not of silent layers
