"""netx HDF5 export: the file read back with h5py has lava-dl's layout and the mapped, quantized values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import NotExportable, PerStep, fold_batchnorm, to_netx
from tests.export.helpers import conv_bn, mlp

h5py = pytest.importorskip("h5py")
X = torch.rand(2, 1, 1, 28, 28)


def layers(path) -> list[dict]:
    """``[{key: value}]`` of every ``/layer/<i>``, in index order (nested groups as 'neuron/vDecay')."""
    out = []
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == ["layer"]
        group = f["layer"]
        assert sorted(group, key=int) == [str(i) for i in range(len(group))]
        for i in range(len(group)):
            d = {}
            group[str(i)].visititems(lambda k, v, d=d: d.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
            d["attrs"] = dict(group[str(i)].attrs)
            out.append(d)
    return out


def test_mlp_layout_and_values(tmp_path):
    net = mlp(lambda: N.LIF(tau=2.0))            # Flatten, Linear(784, 64), LIF, Linear(64, 10), LIF
    to_netx(net, tmp_path / "m.net", X)
    ls = layers(tmp_path / "m.net")
    assert [l["type"][0] for l in ls] == [b"dense", b"dense"]   # the leading Flatten is the reader's job
    d0 = ls[0]
    assert d0["type"].shape == (1,) and d0["inFeatures"] == 784 and d0["outFeatures"] == 64
    assert list(d0["shape"]) == [64] and d0["weight"].shape == (64, 784) and d0["weight"].dtype == np.int32
    scale = d0["attrs"]["spikeattn_scale"]
    assert 64 <= np.abs(d0["weight"]).max() <= 127 and np.log2(scale) == int(np.log2(scale))
    w = net[1].weight.detach().double().numpy() / 2.0          # decay_input: W / tau
    np.testing.assert_array_equal(d0["weight"], np.round(w * scale))
    np.testing.assert_array_equal(d0["bias"], np.round(net[1].bias.detach().double().numpy() / 2.0 * scale))
    assert d0["neuron/type"] == b"CUBA" and d0["neuron/iDecay"] == 4096 and d0["neuron/vDecay"] == 2048
    assert d0["neuron/vThMant"] == round(1.0 * scale) and d0["attrs"]["spikeattn_module"] == "1"


def test_decay_input_false_if_and_plif(tmp_path):
    net = nn.Sequential(nn.Linear(8, 4), N.LIF(tau=4.0, v_th=0.5, decay_input=False),
                        nn.Linear(4, 3), N.IF(), nn.Linear(3, 2), N.PLIF(init_tau=3.0)).eval()
    to_netx(net, tmp_path / "p.net", torch.rand(1, 1, 8))
    lif, if_, plif = layers(tmp_path / "p.net")
    s = lif["attrs"]["spikeattn_scale"]
    np.testing.assert_array_equal(lif["weight"], np.round(net[0].weight.detach().double().numpy() * s))  # no 1/tau
    assert lif["neuron/vDecay"] == 1024 and lif["neuron/vThMant"] == round(0.5 * s)
    assert if_["neuron/vDecay"] == 0
    k = torch.sigmoid(net[5].w.detach().float()).item()
    assert plif["neuron/vDecay"] == round(4096 * k)
    np.testing.assert_array_equal(plif["weight"], np.round(net[4].weight.detach().double().numpy() * k
                                                           * plif["attrs"]["spikeattn_scale"]))


def test_conv_layout(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(PerStep(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4)), N.LIF(),
                        PerStep(nn.Flatten()), nn.Linear(4 * 14 * 14, 10), N.LIF()).eval()
    net[0][1].running_mean.uniform_(-0.5, 0.5)
    to_netx(net, tmp_path / "c.net", X)
    inp, conv, flat, dense = layers(tmp_path / "c.net")
    # shape only, no neuron: netx then builds no Input block and the conv's own input port takes spikes
    assert inp["type"][0] == b"input" and list(inp["shape"]) == [1, 28, 28] and not any(k.startswith("neuron") for k in inp)
    assert conv["type"][0] == b"conv" and list(conv["shape"]) == [4, 14, 14]
    assert (conv["inChannels"], conv["outChannels"], conv["groups"]) == (1, 4, 1)
    assert list(conv["kernelSize"]) == [3, 3] and list(conv["stride"]) == [2, 2] and list(conv["padding"]) == [1, 1]
    folded = fold_batchnorm(net)[0][0]                           # BN folded into the conv, then W / tau
    s = conv["attrs"]["spikeattn_scale"]
    np.testing.assert_array_equal(conv["weight"], np.round(folded.weight.detach().double().numpy() / 2 * s))
    np.testing.assert_array_equal(conv["bias"], np.round(folded.bias.detach().double().numpy() / 2 * s))
    assert flat["type"][0] == b"flatten" and list(flat["shape"]) == [784]
    assert dense["inFeatures"] == 784 and dense["weight"].shape == (10, 784)


def test_avgpool_folds_into_the_next_layer(tmp_path):
    """Conv -> LIF -> AvgPool(2) -> Conv: one netx conv with the kernel repeated over each 2x2
    window / 4, stride and padding doubled; -> AvgPool(2) -> Flatten -> Linear: columns spread."""
    torch.manual_seed(0)
    net = nn.Sequential(PerStep(nn.Conv2d(1, 2, 3, padding=1)), N.LIF(), PerStep(nn.AvgPool2d(2), nn.Conv2d(2, 3, 3, padding=1)),
                        N.LIF(), PerStep(nn.AvgPool2d(2), nn.Flatten()), nn.Linear(3 * 7 * 7, 4), N.LIF()).eval()
    to_netx(net, tmp_path / "f.net", X)
    _, c1, c2, flat, dense = layers(tmp_path / "f.net")
    assert list(c2["kernelSize"]) == [6, 6] and list(c2["stride"]) == [2, 2] and list(c2["padding"]) == [2, 2]
    s = c2["attrs"]["spikeattn_scale"]
    w = net[2][1].weight.detach().double().numpy() / 4 / 2 * s             # / window, / tau, * scale
    np.testing.assert_array_equal(c2["weight"], np.round(w.repeat(2, axis=2).repeat(2, axis=3)))
    assert list(flat["shape"]) == [3 * 14 * 14] and dense["weight"].shape == (4, 3 * 14 * 14)
    wd = net[5].weight.detach().double().numpy().reshape(4, 3, 7, 7) / 4 / 2 * dense["attrs"]["spikeattn_scale"]
    np.testing.assert_array_equal(dense["weight"], np.round(wd.repeat(2, axis=2).repeat(2, axis=3).reshape(4, -1)))


def test_not_exportable(tmp_path):
    with pytest.raises(NotExportable) as e:
        to_netx(conv_bn(), tmp_path / "x.net", X)    # max pooling, soft-reset IF (its 2x2 avg pool folds)
    got = {(p, t): why for p, t, why in e.value.problems}
    assert set(got) == {("2.0", "MaxPool2d"), ("3", "IF")} and "not linear" in got[("2.0", "MaxPool2d")]
    with pytest.raises(NotExportable, match="tile the input"):
        to_netx(nn.Sequential(PerStep(nn.Conv2d(1, 2, 3)), N.LIF(), PerStep(nn.AvgPool2d(4), nn.Flatten()),
                              nn.Linear(2 * 6 * 6, 2), N.LIF()).eval(), tmp_path / "p.net", X)   # 26 % 4 != 0
    with pytest.raises(NotExportable, match="followed by a neuron"):
        to_netx(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2), N.LIF()), tmp_path / "y.net", torch.rand(1, 1, 4))
    with pytest.raises(NotExportable, match="resets to 0"):
        to_netx(mlp(lambda: N.LIF(v_reset=-0.5)), tmp_path / "z.net", X)
    assert not (tmp_path / "x.net").exists()
