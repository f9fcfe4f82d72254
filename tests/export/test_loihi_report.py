"""Loihi resource report: each limit binds on a layer built to hit it, convs are tiled within every
limit, totals are the sum of layers, and every profile number has a source (no Lava needed)."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import spikeattn as sa
import spikeattn.neuron as N
from spikeattn.export import PerStep, load_loihi_profile, loihi_report, to_lava
from spikeattn.export.loihi_cores import bits_per_axon, conv_cores
from spikeattn.export.loihi_profile import FIELDS
from spikeattn.opcount import load_profile


def _dense(d_in, d_out, profile="loihi1", synapses=1):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(d_in, d_out), N.LIF()).eval()
    rep = loihi_report(net, (torch.rand(2, 1, d_in) < 0.2).float(), profile=profile, weight_synapses=synapses)
    (layer,) = rep.layers
    return rep, layer


def test_synapse_memory_binds_linear_784_1024():
    rep, layer = _dense(784, 1024)
    assert layer["binding"] == "synapse memory"
    assert layer["cores"] >= math.ceil(784 * 1024 * 8 / 2 ** 20) == 7
    # 64 synapses of 8 bits + a 10-bit header per group, rounded up to 64-bit words: 16 groups per axon
    assert layer["synapse_bits"] == 784 * 16 * 576 and layer["cores"] == math.ceil(784 * 16 * 576 / 2 ** 20)
    assert layer["neurons"] == 1024 and layer["axons_in"] == 784 and layer["synapses"] == 784 * 1024
    # two synapses per connection (sign + 16 bits) double the memory and the cores
    _, layer2 = _dense(784, 1024, synapses=2)
    assert layer2["cores"] >= 2 * 7 - 1 and layer2["binding"] == "synapse memory"


def test_input_axons_bind():
    _, layer = _dense(5000, 100)
    assert layer["cores"] >= 2                        # the acceptance layer (memory binds harder here)
    _, layer = _dense(5000, 2)                          # little memory: 5000 axons > 4096 alone set the count
    assert layer["binding"] == "input axons" and layer["cores"] == 2


def test_neurons_bind():
    _, layer = _dense(4, 3000)
    assert layer["binding"] == "neurons" and layer["cores"] == 3
    # 4096 neurons fit one Loihi 2 core, but one axon's 3000 synapses take 47 groups of 9 words = 423 > 256
    _, layer = _dense(4, 3000, profile="loihi2")
    assert layer["cores"] == 2 and layer["binding"] == "synapse words per axon"


def test_output_axons_bind():
    """2000 neurons each feeding three 3-core consumers: 2000 * 3 * 3 output axons > 4096."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 2000), N.LIF(), nn.Linear(2000, 2500), N.LIF()).eval()
    rep = loihi_report(net, torch.ones(1, 1, 4), profile="loihi1", weight_synapses=1)
    first, second = rep.layers
    assert second["cores"] >= 3
    assert first["axons_out"] == 2000 * second["cores"]
    assert first["cores"] == math.ceil(first["axons_out"] / 4096) and first["binding"] == "output axons"


def test_words_per_axon_limit():
    """One axon into 40000 neurons: 625 groups of 64 synapses, each 9 words (64*8 + 10 bits -> 576):
    5625 words, 22 times the 256 one axon may address."""
    p = load_loihi_profile("loihi2")
    from spikeattn.export.loihi_cores import dense_cores
    row = dense_cores(1, 1, 40000, 40000, 8, p)
    assert row["needs"]["synapse words per axon"] == math.ceil(bits_per_axon(40000, 8, p) / 64 / 256) == 22


def test_conv_tiled_within_every_limit():
    torch.manual_seed(0)
    net = nn.Sequential(PerStep(nn.Conv2d(64, 128, 3, padding=1)), N.LIF()).eval()
    x = torch.zeros(1, 1, 64, 32, 32)
    p = load_loihi_profile("loihi1")
    rep = loihi_report(net, x, profile=p, weight_synapses=1)
    (layer,) = rep.layers
    tc, th, tw, ci = layer["tile"]
    assert layer["cores"] == math.ceil(128 / tc) * math.ceil(32 / th) * math.ceil(32 / tw) * math.ceil(64 / ci)
    per = layer["per_core"]
    assert per["neurons"] == tc * th * tw <= p["core.neurons"]
    assert per["axons_in"] <= p["core.input_axons"] and per["axons_out"] <= p["core.output_axons"]
    assert per["synapse_bits"] <= p.synapse_memory_bits
    assert layer["cores"] > math.ceil(128 * 32 * 32 / 1024)       # more than the neurons alone would need
    assert layer["synapses"] == 128 * 32 * 32 * 64 * 9 and layer["neurons"] == 128 * 32 * 32


def test_wide_conv_splits_input_channels():
    """The spikingjelly question: a conv with 512 input channels and a 3x3 kernel has 4608 inputs per
    output pixel > 4096 axons of a Loihi 1 core: input channels are split (dendritic sums)."""
    p = load_loihi_profile("loihi1")
    row = conv_cores((512, 8, 8), (512, 8, 8), (3, 3), (1, 1), 512 * 64, 8, p, max_cores=10 ** 6)
    assert row["tile"][3] < 512 and row["per_core"]["axons_in"] <= 4096


@settings(max_examples=25, deadline=None)
@given(c_in=st.integers(1, 40), c_out=st.integers(1, 80), size=st.integers(3, 30), k=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]))
def test_conv_tiling_property(c_in, c_out, size, k, stride):
    """Any conv: the chosen tiling covers the layer and its interior tile is within every limit."""
    p = load_loihi_profile("loihi1")
    out = (size - k) // stride + 1
    if out < 1:
        return
    row = conv_cores((c_in, size, size), (c_out, out, out), (k, k), (stride, stride), c_out * out * out, 8, p, 10 ** 6)
    tc, th, tw, ci = row["tile"]
    assert row["cores"] == -(-c_out // tc) * -(-out // th) * -(-out // tw) * -(-c_in // ci)
    per = row["per_core"]
    assert per["neurons"] <= 1024 and per["axons_in"] <= 4096 and per["synapse_bits"] <= 2 ** 20
    assert per["axons_in"] <= ci * size * size


def test_totals_are_sums_and_spikformer_lists_off_library(tmp_path):
    model = sa.models.spikformer("spikformer-mini-fmnist").eval()
    x = torch.rand(2, 1, 28, 28)
    rep = loihi_report(model, x, profile="loihi2")
    assert rep.total_cores == sum(l["cores"] for l in rep.layers) > 0
    assert rep.chips == math.ceil(rep.total_cores / 128)
    assert rep.fits == {"one chip": rep.chips <= 1, "Kapoho Point": rep.chips <= 8, "Hala Point": True}
    ops = {o["op"] for o in rep.off_library}
    assert {"ssa", "add", "maxpool2d", "readout"} <= ops and all(o["why"] for o in rep.off_library)
    assert {l["op"] for l in rep.layers} == {"conv2d", "linear", "lif"}   # attn_lif: fed by the custom attention
    est = rep.estimate
    assert est["energy_j"] > 0 and est["latency_s"] >= 0 and "Davies" in est["energy_source"]
    # the same report from the exported artifact (no energy: that needs the torch model)
    art = to_lava(model, tmp_path / "art", x)
    rep2 = loihi_report(art, profile="loihi2")
    assert [l["cores"] for l in rep2.layers] == [l["cores"] for l in rep.layers] and rep2.estimate is None
    data = rep.to_json(tmp_path / "r.json").read_text()
    assert '"total_cores"' in data and "synapse memory" in rep.table()


def test_default_synapses_are_the_default_plans():
    """The report's default counts the synapses of run_lava's default fixed-point plan (one 8-bit
    synapse per connection, as on Lava's library processes), half the weight bits of plan='per_channel'."""
    from spikeattn.export.lava import PLANS

    net = nn.Sequential(nn.Linear(784, 1024), N.LIF()).eval()
    x = (torch.rand(2, 1, 784) < 0.2).float()
    rep, wide = loihi_report(net, x, profile="loihi1"), loihi_report(net, x, profile="loihi1", weight_synapses=2)
    assert rep.weight_synapses == PLANS["library"] == 1 and wide.weight_synapses == PLANS["per_channel"] == 2
    assert (rep.layers[0]["synapse_bits_per_weight"], wide.layers[0]["synapse_bits_per_weight"]) == (8, 16)
    assert rep.layers[0]["synapse_bits"] < wide.layers[0]["synapse_bits"]


def test_soft_reset_is_off_library():
    net = nn.Sequential(nn.Linear(4, 4), N.LIF(v_reset=None), nn.Linear(4, 2), N.LIF()).eval()
    rep = loihi_report(net, torch.ones(1, 1, 4), profile="loihi1")
    assert [(o["name"], o["op"]) for o in rep.off_library] == [("0", "linear"), ("1", "lif")]
    assert "soft reset" in rep.off_library[1]["why"]


def test_off_library_is_what_library_runs_keep_custom(tmp_path):
    """The report's off-library list and run_lava(library=True)'s Lava pairs split the graph exactly."""
    from spikeattn.export.loihi import _quantize_module

    model = sa.models.spikformer("spikformer-mini-fmnist").eval()
    art = to_lava(model, tmp_path / "a", torch.rand(1, 1, 28, 28))
    pairs = _quantize_module().library_pairs(art.graph)
    off = {o["name"] for o in loihi_report(art, profile="loihi2").off_library}
    work = {n["name"] for n in art.graph["nodes"][1:] if n["op"] not in ("reshape", "to_tokens", "merge_heads")}
    assert off | set(pairs) | set(pairs.values()) == work and not off & (set(pairs) | set(pairs.values()))
    assert {"embed.stages.0.conv.0", "embed.stages.0.lif", "blocks.0.attn.attn_lif"} <= off


@pytest.mark.parametrize("name", ["loihi1", "loihi2"])
def test_every_profile_field_has_a_source(name):
    p = load_loihi_profile(name)
    with open(p.path, "rb") as f:
        data = tomllib.load(f)
    numbers = [f"{t}.{k}" for t, tab in data.items() if isinstance(tab, dict) and t != "sources"
               for k, v in tab.items() if isinstance(v, (int, float))]
    assert set(FIELDS) <= set(numbers)
    for key in numbers:
        assert data["sources"][key]["source"] and data["sources"][key]["confidence"] in ("high", "medium", "low"), key
    assert load_profile(name).ac_pj == p["compute.ac_pj"]      # also an opcount energy profile


def test_profile_errors(tmp_path):
    text = (load_loihi_profile("loihi1").path).read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("input_axons = 4096\n", "", 1))
    with pytest.raises(ValueError, match="missing the field 'core.input_axons'"):
        load_loihi_profile(bad)
    bad.write_text(text.replace('"chip.cores" = {', '"chip.coresX" = {', 1))
    with pytest.raises(ValueError, match="'chip.cores' needs \\[sources\\]"):
        load_loihi_profile(bad)
    with pytest.raises(ValueError, match="unknown Loihi profile"):
        load_loihi_profile("loihi3")
    with pytest.raises(FileNotFoundError):
        load_loihi_profile(tmp_path / "none.toml")


def test_layer_too_large_for_any_system(tmp_path):
    """A profile whose largest system is one 4-core chip cannot hold a 7-core layer: a clear error."""
    text = load_loihi_profile("loihi1").path.read_text()
    small = tmp_path / "tiny.toml"
    small.write_text(text.replace("cores = 128", "cores = 4").replace('"Kapoho Bay" = 2\n', "")
                     .replace('"Pohoiki Springs" = 768\n', ""))
    with pytest.raises(ValueError, match=r"layer '0' \(linear, 1024 neurons\) cannot be held by profile .*7 cores"):
        _dense(784, 1024, profile=small)
    with pytest.raises(ValueError, match="weight_synapses"):
        loihi_report(nn.Sequential(nn.Linear(2, 2), N.LIF()), torch.ones(1, 1, 2), weight_synapses=3)
    with pytest.raises(ValueError, match="example_input"):
        loihi_report(nn.Sequential(nn.Linear(2, 2), N.LIF()))
    assert np.isfinite(_dense(8, 8)[0].estimate["energy_j"])


def test_cli(capsys, tmp_path):
    from spikeattn.cli import main

    main(["loihi-report", "spikformer-mini-fmnist", "--profile", "loihi1", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "profile loihi1" in out and "binding" in out and (tmp_path / "r.json").is_file()
    with pytest.raises(SystemExit, match="unknown Loihi profile"):
        main(["loihi-report", "spikformer-mini-fmnist", "--profile", "loihi9"])
