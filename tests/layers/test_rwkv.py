"""SpikeGPT layers: time mix / channel mix against hand-written formulas, init schedules by depth,
parallel forward == token-by-token step, the LIF over the token axis, bad arguments."""

from __future__ import annotations

import math

import pytest
import torch

from spikeattn.layers.rwkv import SpikeGPTBlock, SpikingChannelMix, SpikingTimeMix, token_shift
from spikeattn.ops.wkv.reference import dense_wkv
from tests.conftest import assert_close


# Token-sized matmuls: a second OpenMP thread only adds contention on a shared CPU.
pytestmark = pytest.mark.usefixtures("one_thread")


def randomize(module: torch.nn.Module, scale: float = 0.5) -> None:
    """Random weights everywhere (the RWKV init zeroes some projections, which would hide bugs)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * scale)


def steps(layer, x, state=None):
    outs = []
    for t in range(x.shape[1]):
        y, state = layer.step(x[:, t], state)
        outs.append(y)
    return torch.stack(outs, 1), state


def test_token_shift():
    x = torch.arange(6.0).view(1, 3, 2)
    assert token_shift(x).tolist() == [[[0, 0], [0, 1], [2, 3]]]


def test_time_mix_is_the_formula():
    torch.manual_seed(0)
    att = SpikingTimeMix(8, 1, 3, wkv_backend="torch")
    randomize(att)
    x = torch.randn(2, 9, 8)
    xx = torch.cat([torch.zeros(2, 1, 8), x[:, :-1]], 1)
    mix = lambda m: x * m + xx * (1 - m)  # noqa: E731
    k, v, r = att.key(mix(att.time_mix_k)), att.value(mix(att.time_mix_v)), att.receptance(mix(att.time_mix_r))
    expected = att.output(torch.sigmoid(r) * dense_wkv(att.time_decay.exp(), att.time_first, k, v).float())
    assert_close(att(x), expected, 1e-5, 1e-6)


def test_channel_mix_is_the_formula():
    torch.manual_seed(0)
    ffn = SpikingChannelMix(8, 0, 2)
    randomize(ffn)
    x = torch.randn(2, 5, 8)
    xx = token_shift(x)
    xk = x * ffn.time_mix_k + xx * (1 - ffn.time_mix_k)
    xr = x * ffn.time_mix_r + xx * (1 - ffn.time_mix_r)
    expected = torch.sigmoid(xr @ ffn.receptance.weight.T) * (torch.relu(xk @ ffn.key.weight.T) ** 2 @ ffn.value.weight.T)
    assert_close(ffn(x), expected, 1e-5, 1e-6)
    assert ffn.key.weight.shape == (32, 8)


def test_init_schedules_by_depth():
    dim, n = 16, 4
    first, last = SpikingTimeMix(dim, 0, n), SpikingTimeMix(dim, n - 1, n)
    # decay: -5 at channel 0 to 3 at the last channel; the ramp bends more in deeper layers
    assert first.time_decay[0].item() == pytest.approx(-5) and first.time_decay[-1].item() == pytest.approx(3)
    assert (last.time_decay[1:-1] < first.time_decay[1:-1]).all()
    assert first.time_first[:3].tolist() == pytest.approx([math.log(0.3), math.log(0.3) + 0.5, math.log(0.3) - 0.5])
    # mixes: i/C to the power (1 - layer/n): layer 0 is linear in the channel index
    assert first.time_mix_k[4].item() == pytest.approx(4 / dim)
    assert last.time_mix_k[4].item() == pytest.approx((4 / dim) ** 0.25)
    assert last.time_mix_v[4].item() == pytest.approx((4 / dim) ** 0.25 + 0.3)
    assert SpikingChannelMix(dim, 2, n).time_mix_r[4].item() == pytest.approx((4 / dim) ** 0.5)
    assert SpikingTimeMix(dim, 0, 1).time_decay.isfinite().all()  # one layer: no division by n - 1 = 0


@pytest.mark.parametrize("layer", ["time_mix", "channel_mix"])
def test_step_equals_forward(layer):
    torch.manual_seed(0)
    module = SpikingTimeMix(12, 1, 2) if layer == "time_mix" else SpikingChannelMix(12, 1, 2)
    randomize(module)
    x = torch.randn(3, 20, 12)
    y_steps, _ = steps(module, x)
    assert_close(y_steps, module(x), 1e-5, 1e-6)


def test_block_lif_runs_over_tokens():
    """The membrane carries from token to token: 1.5 per token charges to 0.75 (silent), then to 1.125
    (spike, reset to 0), then 0.75 again. A neuron over the batch axis would fire on no token."""
    torch.manual_seed(0)
    block = SpikeGPTBlock(4, 0, 1)
    y = torch.full((1, 3, 4), 1.5)  # tau 2, hard reset: h = 0.75 (no spike), 0.75 + 0.375 = 1.125 (spike), 0.75
    s = block.lif_att(y)
    assert s[0, :, 0].tolist() == [0.0, 1.0, 0.0]
    assert block.lif_att.v is None  # nothing left behind


def test_block_step_equals_forward_and_spikes():
    torch.manual_seed(1)
    block = SpikeGPTBlock(16, 0, 2)
    randomize(block)
    x = torch.randn(2, 24, 16)
    rates = []
    block.lif_att.register_forward_hook(lambda m, i, o: rates.append(o.mean().item()))
    y = block(x)
    assert 0.02 < rates[0] < 0.98, "the case must fire and stay silent"
    y_steps, state = steps(block, x)
    assert_close(y_steps, y, 1e-5, 1e-6)
    assert state.v_att.shape == (2, 16) and state.att.wkv.p.shape == (2, 16)


def test_block_gradients_flow_to_every_parameter():
    torch.manual_seed(0)
    block = SpikeGPTBlock(8, 0, 1)
    randomize(block)
    block(torch.randn(2, 6, 8)).sum().backward()
    missing = [n for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("args", [(0, 0, 1), (8, 2, 2), (8, -1, 2), (8, 0, 0)])
def test_bad_depth(args):
    with pytest.raises(ValueError):
        SpikingTimeMix(*args)
    with pytest.raises(ValueError):
        SpikingChannelMix(*args)
