"""Energy profiles: loading, errors, and totals of a tiny net computed by hand from the TOML constants."""

import tomllib

import pytest
import torch
from torch import nn

import spikeattn as sa
from spikeattn._paths import hardware_dir
from spikeattn.opcount import count, list_profiles, load_profile

PJ = 1e-12


def tiny_net():
    fc = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        fc.weight.fill_(1.0)
    return nn.Sequential(fc, sa.neuron.LIF(tau=2.0, v_th=1.0))


def tiny_input():
    # t0: 3 spikes -> each output = 3 -> H = 1.5 >= 1: 3 spikes; t1: silent -> H = 0: none.
    return torch.tensor([[[1.0, 1, 1, 0]], [[0.0, 0, 0, 0]]])  # [T=2, B=1, 4]


def test_tiny_net_counts():
    r = count(tiny_net(), tiny_input())
    assert r.total("sop") == 9 and r.total("real_mac") == 0 and r.total("mac") == 24
    assert r.total("neuron") == 6 and r.total("spikes") == 3
    assert r.total("bytes") == 9 * 4 + 6 * 2 * 4  # weights per accumulate + membrane read/write


def test_energy_45nm_by_hand():
    toml = tomllib.loads((hardware_dir() / "profiles" / "45nm.toml").read_text())
    assert (toml["compute"]["mac_pj"], toml["compute"]["ac_pj"], toml["memory"]["pj_per_byte"]) == (4.6, 0.9, 1.25)
    e = count(tiny_net(), tiny_input()).energy("45nm")
    assert e["total"]["compute_j"] == pytest.approx(0.9 * 9 * PJ)
    assert e["total"]["memory_j"] == pytest.approx(1.25 * 84 * PJ)
    assert e["total"]["total_j"] == pytest.approx((8.1 + 105.0) * PJ)
    assert e["by_module"]["0"]["ac_j"] == pytest.approx(8.1 * PJ)
    assert e["by_module"]["1"]["memory_j"] == pytest.approx(1.25 * 48 * PJ)
    assert e["by_module"]["1"]["neuron_j"] == 0.0  # the Horowitz profile does not price neuron updates


def test_energy_loihi_by_hand():
    e = count(tiny_net(), tiny_input()).energy("loihi")
    # 9 synops x 23.6 + 3 active x 81 + 3 inactive x 52 + 3 spikes moved x 1.7; memory not priced
    assert e["total"]["total_j"] == pytest.approx((9 * 23.6 + 3 * 81 + 3 * 52 + 3 * 1.7) * PJ)
    assert e["total"]["memory_j"] == 0.0 and e["memory_priced"] is False
    assert e["by_module"]["1"]["neuron_j"] == pytest.approx((3 * 81 + 3 * 52) * PJ)


def test_energy_of_a_real_valued_layer_is_macs():
    e = count(nn.Linear(4, 3), torch.full((1, 4), 0.5)).energy("45nm")
    assert e["total"]["mac_j"] == pytest.approx(4.6 * 12 * PJ)
    assert e["total"]["memory_j"] == pytest.approx(1.25 * (4 + 12) * 4 * PJ)


def test_shipped_profiles_and_sources():
    assert {"45nm", "45nm_int8", "loihi"} <= set(list_profiles())
    for name in list_profiles():
        p = load_profile(name)
        assert p.name == name and p.source
    assert (load_profile("45nm_int8").mac_pj, load_profile("45nm_int8").ac_pj) == (0.2, 0.03)
    lo = load_profile("loihi")
    assert (lo.ac_pj, lo.neuron_active_pj, lo.neuron_inactive_pj, lo.spike_move_pj) == (23.6, 81.0, 52.0, 1.7)
    assert "Davies" in lo.source and "Horowitz" in load_profile("45nm").source


def test_user_profile_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nsource = "test"\n[compute]\nmac_pj = 2.0\nac_pj = 1.0\n[neuron]\nupdate_pj = 10\n')
    e = count(tiny_net(), tiny_input()).energy(path)
    assert e["profile"] == "mine"
    assert e["total"]["total_j"] == pytest.approx((9 * 1.0 + 6 * 10) * PJ)
    assert count(tiny_net(), tiny_input()).energy(str(path))["total"] == e["total"]


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown energy profile 'tpu'.*45nm.*loihi"):
        count(tiny_net(), tiny_input()).energy("tpu")


@pytest.mark.parametrize("text,field", [
    ('source = "s"\n[compute]\nmac_pj = 1\nac_pj = 1\n', "name"),
    ('name = "x"\nsource = "s"\n[compute]\nmac_pj = 1\n', "compute.ac_pj"),
    ('name = "x"\nsource = "s"\n', "compute.mac_pj"),
    ('name = "x"\nsource = "s"\n[compute]\nmac_pj = 1\nac_pj = 1\n[neuron]\nactive_pj = 3\n', "neuron.inactive_pj"),
    ('name = "x"\nsource = "s"\n[compute]\nmac_pj = 1\nac_pj = 1\n[memory]\n', "memory.pj_per_byte"),
], ids=["name", "ac", "mac", "inactive", "memory"])
def test_profile_missing_a_field_names_it(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"missing the field '{field}'"):
        load_profile(path)


def test_profile_with_a_bad_value_or_syntax(tmp_path):
    path = tmp_path / "neg.toml"
    path.write_text('name = "x"\nsource = "s"\n[compute]\nmac_pj = -1\nac_pj = 1\n')
    with pytest.raises(ValueError, match="compute.mac_pj"):
        load_profile(path)
    path.write_text("name = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_profile(path)
    with pytest.raises(FileNotFoundError):
        load_profile(tmp_path / "absent.toml")
    with pytest.raises(TypeError, match="profile"):
        load_profile(3)
