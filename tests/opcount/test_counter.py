"""The counter: module attribution, neuron updates and firing rates, state handling, failures, extension."""

import pytest
import torch
from torch import nn

import spikeattn as sa
from spikeattn.opcount import OpCount, count


class Block(nn.Module):
    """Linear -> LIF -> (plain @ against a weight) -> IF; ops in the block's own forward go to 'block'."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3, bias=False)
        self.lif = sa.neuron.LIF()
        self.w = nn.Parameter(torch.randn(3, 2))
        self.out = sa.neuron.IF()

    def forward(self, x):
        return self.out(self.lif(self.fc(x)) @ self.w)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
        return self.block(x)


def test_ops_are_charged_to_the_innermost_module():
    torch.manual_seed(0)
    net = Net()
    x = (torch.rand(3, 2, 4) < 0.5).float()
    r = count(net, x)
    assert set(r.by_module) == {"block", "block.fc", "block.lif", "block.out"}
    assert r.by_module["block.fc"]["sop"] == int(x.sum()) * 3
    assert r.by_module["block"]["mac"] == 3 * 2 * 3 * 2  # the @ in Block.forward
    assert r.module_types["block.lif"] == "LIF"


def test_firing_rates_on_a_hand_built_lif_input():
    # LIF tau=2, v_th=1, hard reset to 0: H = V + (X - V)/2.
    # X=1.5: H = 0.75, 1.125 (spike), 0.75, 1.125 (spike) -> 2 spikes; X=0: none; X=2.5: spikes every step.
    lif = sa.neuron.LIF(tau=2.0, v_th=1.0, v_reset=0.0)
    x = torch.tensor([1.5, 0.0, 2.5]).expand(4, 1, 3).contiguous()  # [T=4, B=1, 3]
    r = count(lif, x)
    assert r.total("neuron") == 12
    assert r.total("spikes") == 2 + 0 + 4
    assert r.firing_rates == {"(root)": 0.5}
    assert r.total("bytes") == 12 * 2 * 4  # fp32 membrane read + written per update


def test_single_step_neuron_called_per_step_accumulates():
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = sa.neuron.LIF(step_mode="s")

        def forward(self, x):
            return torch.stack([self.lif(x_t) for x_t in x])

    r = count(Loop(), torch.tensor([1.5, 0.0, 2.5]).expand(4, 1, 3).contiguous())
    assert r.neurons["lif"]["updates"] == 12 and r.neurons["lif"]["spikes"] == 6


def test_lif_custom_op_is_not_arithmetic():
    r = count(sa.neuron.PLIF(), torch.rand(4, 2, 8))
    assert r.by_op == {}
    assert r.total("mac") == 0 and r.total("sop") == 0
    assert r.total("neuron") == 64


def test_state_is_reset_before_and_after():
    lif = sa.neuron.LIF()
    lif(torch.full((2, 1, 3), 1.9))  # leaves a membrane behind
    assert lif.v is not None
    x = torch.tensor([1.5, 0.0, 2.5]).expand(4, 1, 3).contiguous()
    assert count(lif, x).total("spikes") == 6  # as from rest
    assert lif.v is None


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.lif = sa.neuron.LIF()

    def forward(self, x):
        y = self.lif(self.bn(self.fc(x)).unsqueeze(0))
        raise RuntimeError("boom after the LIF ran")


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_failing_forward_leaves_the_model_unchanged_and_reraises():
    torch.manual_seed(0)
    model = Broken().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = _hook_count(model)
    with pytest.raises(RuntimeError, match="boom after the LIF ran"):
        count(model, torch.randn(5, 4))
    assert _hook_count(model) == hooks
    assert model.lif.v is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running stats restored
    assert model.training


def test_successful_count_restores_batchnorm_statistics():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).train()
    before = model[1].running_mean.clone()
    count(model, torch.randn(8, 4))
    assert torch.equal(model[1].running_mean, before)
    assert _hook_count(model) == 0


def test_forward_kwargs_and_tuple_inputs_are_passed():
    class Two(nn.Module):
        def forward(self, a, b, scale=1.0):
            return (a @ b) * scale

    a, b = torch.eye(3), torch.randn(3, 3)
    assert count(Two(), (a, b), scale=2.0).total("sop") == 3 * 3


def test_extra_rules_extend_the_table():
    aten = torch.ops.aten

    def count_sums(args, kwargs, out, ctx):
        return OpCount(sop=args[0].numel())  # e.g. an accumulate per summed element

    x = torch.ones(2, 5)
    plain = count(nn.Identity(), x)
    r = count(lambda_module(lambda t: t.sum(dim=1)), x, extra_rules={aten.sum.dim_IntList: count_sums})
    assert plain.total("sop") == 0 and r.total("sop") == 10
    assert aten.sum.dim_IntList not in sa.opcount.RULES  # the default table is not modified


def lambda_module(fn):
    class F(nn.Module):
        def forward(self, x):
            return fn(x)

    return F()


def test_bad_model_raises_type_error():
    with pytest.raises(TypeError, match="model"):
        count(lambda x: x, torch.ones(1))


def test_total_rejects_unknown_keys():
    with pytest.raises(ValueError, match="key must be one of"):
        count(nn.Linear(2, 2), torch.ones(1, 2)).total("flops")


def test_trusting_neuron_outputs_as_spikes_changes_no_count(monkeypatch):
    """The counter tells the rules that LIF/IF/PLIF outputs are 0/1 (no second scan): same table as scanning."""
    import spikeattn as sa
    from spikeattn.opcount import counter

    torch.manual_seed(0)
    model = sa.models.spikformer("spikformer-mini-fmnist").train()
    x = torch.randn(8, 1, 28, 28)
    trusted = count(model, x)
    monkeypatch.setattr(counter, "BINARY_NEURONS", ())
    assert trusted.table() == count(model, x).table()
    assert trusted.total("sop") > 0
