"""Report output (table, JSON, PNG) and the ANN twin comparison."""

import json

import pytest
import torch
from torch import nn

import spikeattn as sa
from spikeattn.opcount import count


class ConvSNN(nn.Module):
    """Real-valued image -> conv (MACs) -> LIF -> conv (SOPs) -> LIF -> flatten -> linear (SOPs)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.lif1 = sa.neuron.LIF()
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.lif2 = sa.neuron.LIF()
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):  # x [T, B, 1, 8, 8]
        t, b = x.shape[:2]
        y = self.lif1(self.conv1(x.flatten(0, 1)).unflatten(0, (t, b)))
        y = self.lif2(self.conv2(y.flatten(0, 1)).unflatten(0, (t, b)) * 2.0)
        return self.fc(y.flatten(2))


def make():
    torch.manual_seed(0)
    return ConvSNN(), torch.rand(4, 2, 1, 8, 8) * 3


def test_table_lists_every_counted_module_and_a_total():
    model, x = make()
    text = count(model, x).table()
    lines = text.splitlines()
    for name in ("conv1", "lif1", "conv2", "lif2", "fc", "total"):
        assert any(line.startswith(name) for line in lines), name
    assert len({len(line) for line in lines}) == 1  # aligned: every line has the same width


def test_json_round_trip(tmp_path):
    model, x = make()
    r = count(model, x)
    data = json.loads(r.to_json(tmp_path / "out" / "r.json").read_text())
    assert data["totals"]["sop"] == r.total("sop") and data["totals"]["mac"] == r.total("mac")
    assert data["by_module"]["conv1"]["real_mac"] == r.by_module["conv1"]["real_mac"] > 0
    assert set(data["firing_rates"]) == {"lif1", "lif2"}
    assert data["energy"]["45nm"]["total"]["total_j"] > 0 and "loihi" in data["energy"]


def test_plot_writes_a_png(tmp_path):
    model, x = make()
    r = count(model, x)
    path = r.plot(tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cmp_path = sa.opcount.compare_ann(model, x).plot(tmp_path / "c.png")
    assert cmp_path.read_bytes()[:4] == b"\x89PNG"


def test_compare_ann_counts_dense_macs_everywhere_and_leaves_the_model_alone():
    model, x = make()
    r = count(model, x)
    cmp = sa.opcount.compare_ann(model, x)
    assert cmp.snn.as_dict() == r.as_dict()
    assert cmp.ann.total("real_mac") == cmp.ann.total("mac") == r.total("mac")  # same architecture
    assert cmp.ann.total("sop") == 0 and cmp.ann.total("neuron") == 0
    assert cmp.ann.module_types["lif1"] == "ReLU"
    assert isinstance(model.lif1, sa.neuron.LIF)  # the original keeps its neurons
    snn_ops = r.total("sop") + r.total("real_mac")
    assert cmp.ratios()["ops"] == r.total("mac") / snn_ops
    text = cmp.table()
    assert "ANN/SNN" in text and "conv2" in text


def test_conv_snn_splits_macs_and_sops_as_expected():
    model, x = make()
    r = count(model, x).by_module
    assert r["conv1"]["sop"] == 0 and r["conv1"]["real_mac"] == r["conv1"]["mac"]  # real-valued image
    assert r["conv2"]["real_mac"] == 0                                             # spikes in
    assert r["fc"]["real_mac"] == 0                                                # spikes in


def test_report_is_plain_data_and_points_to_compare_ann():
    model, x = make()
    r = count(model, x)
    assert not any(isinstance(v, nn.Module) for v in vars(r).values())  # the report keeps no model alive
    with pytest.raises(TypeError, match=r"spikeattn.opcount.compare_ann\(model, example_input\)"):
        r.compare_ann()
