"""Cross-check against spikingjelly 2.0's op_counter where the conventions agree.

For binary or real-valued operands both count a binary input as nnz x exact fan-out (SynOpCounter =
our ``sop``) and a real-valued op as dense MACs (MACCounter = our ``real_mac``). They differ on
integer-valued inputs (spikingjelly: 0 SynOps, dense MACs), which is not exercised here.
"""

import pytest
import torch
from torch import nn

sj_counter = pytest.importorskip("spikingjelly.activation_based.op_counter")
from spikingjelly.activation_based import functional, layer  # noqa: E402
from spikingjelly.activation_based import neuron as sjn  # noqa: E402

import spikeattn as sa  # noqa: E402
from spikeattn.opcount import count  # noqa: E402


def sj_net(groups: int, neuron):
    return nn.Sequential(
        layer.Conv2d(2, 8, 3, padding=1, step_mode="m"), neuron(),
        layer.Conv2d(8, 8, 3, stride=2, padding=1, groups=groups, step_mode="m"), neuron(),
        layer.Flatten(step_mode="m"), layer.Linear(8 * 4 * 4, 10, step_mode="m"), neuron(),
        layer.Linear(10, 4, step_mode="m"),
    )


def sj_counts(net, x):
    syn, mac = sj_counter.SynOpCounter(), sj_counter.MACCounter()
    with torch.no_grad(), sj_counter.DispatchCounterMode([syn, mac]):
        net(x)
    functional.reset_net(net)
    per_module = {scope.split(".", 1)[1]: sum(v.values()) for scope, v in syn.records.items() if "." in scope}
    return syn.get_total(), mac.get_total(), per_module


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("neuron", ["sj-if", "spikeattn-lif"])
def test_synops_and_macs_equal_spikingjelly(groups, neuron):
    torch.manual_seed(groups)
    make = {"sj-if": lambda: sjn.IFNode(v_threshold=0.2, step_mode="m"),
            "spikeattn-lif": lambda: sa.neuron.LIF(v_th=0.2)}[neuron]
    net = sj_net(groups, make)
    x = torch.rand(4, 2, 2, 8, 8) * 3  # real-valued image: the first conv is MACs
    syn_total, mac_total, syn_per_module = sj_counts(net, x)
    r = count(net, x, neuron_types=(sjn.IFNode, sa.neuron.LIF))
    assert r.total("sop") > 0  # spikes did flow, so the comparison means something
    assert r.total("sop") == syn_total
    assert r.total("real_mac") == mac_total
    for path in ("2", "5", "7"):
        assert r.by_module[path]["sop"] == syn_per_module[path], path
    assert r.total("neuron") == 4 * 2 * (8 * 8 * 8 + 8 * 4 * 4 + 10)
