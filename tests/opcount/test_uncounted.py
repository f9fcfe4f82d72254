"""No silent zeros: torch's fused attention and RNN ops are counted by exact generic rules (hand counts),
and an op the counter has no rule for is listed in report.uncounted, warned about, and marks the
totals and energy as lower bounds."""

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import spikeattn as sa
from spikeattn.opcount import UncountedOpWarning, count
from tests.opcount.helpers import Fn

L, B, E, H = 5, 2, 16, 2  # tokens, batch, embedding, heads


def mha_hand_count(n_tokens=L, batch=B, dim=E):
    in_proj = 3 * batch * n_tokens * dim * dim       # Q, K, V projections
    attention = 2 * batch * n_tokens * n_tokens * dim  # Q K^T and P V over all heads (H * d = E)
    out_proj = batch * n_tokens * dim * dim
    return in_proj + attention + out_proj


class SelfAttention(nn.Module):
    def __init__(self, batch_first, need_weights):
        super().__init__()
        self.mha, self.need_weights = nn.MultiheadAttention(E, H, batch_first=batch_first), need_weights

    def forward(self, x):
        return self.mha(x, x, x, need_weights=self.need_weights)[0]


@pytest.mark.parametrize("batch_first,need_weights,train,op", [
    (False, True, True, "bmm"), (False, False, True, "_scaled_dot_product_flash_attention_for_cpu"),
    (True, False, False, "_native_multi_head_attention"), (True, True, False, "_native_multi_head_attention")],
    ids=["bmm", "sdpa", "fused-fast-path", "fast-path-with-weights"])
def test_multihead_attention_counts_its_macs(batch_first, need_weights, train, op):
    """Each path nn.MultiheadAttention can take (bmm, SDPA, the fused inference kernel) counts the hand count."""
    torch.manual_seed(0)
    model = SelfAttention(batch_first, need_weights).train(train)
    x = torch.randn(B, L, E) if batch_first else torch.randn(L, B, E)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedOpWarning)
        r = count(model, x)
    assert op in r.by_op  # the path this case exercises
    assert r.total("mac") == r.total("real_mac") == mha_hand_count()
    assert r.uncounted == {} and not r.lower_bound


def test_sdpa_on_spikes_counts_events():
    torch.manual_seed(0)
    q, k, v = ((torch.rand(B, H, L, 8) < 0.4).float() for _ in range(3))
    r = count(Fn(F.scaled_dot_product_attention), (q, k, v))
    assert r.by_op.keys() == {"_scaled_dot_product_flash_attention_for_cpu"}
    assert r.total("mac") == 2 * B * H * L * L * 8
    assert r.total("real_mac") == 0  # Q K^T: spike x spike; P V: events of V, P read like a weight
    qk_sop = min(int(q.sum()) * L, int(k.sum()) * L)
    assert r.total("sop") == qk_sop + int(v.sum()) * L
    assert r.total("pairs") == int((q @ k.transpose(-2, -1)).sum())


@pytest.mark.parametrize("cls,gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)], ids=["lstm", "gru", "rnn"])
# LSTM runs oneDNN's fused layer (the rule above); GRU and RNN reach the counter as aten matmuls
def test_recurrent_layers_count_input_and_recurrent_gemms(cls, gates):
    torch.manual_seed(0)
    steps, inp, hidden = 6, 8, 16
    x = (torch.rand(steps, B, inp) < 0.3).float()  # spikes in: the input GEMM is event-driven
    r = count(cls(inp, hidden), x)
    assert r.total("mac") == steps * B * gates * hidden * (inp + hidden)
    # the hidden state is real-valued after the first step (h0 = 0 carries no events, on every path)
    assert r.total("real_mac") == (steps - 1) * B * gates * hidden * hidden
    assert r.total("sop") == int(x.sum()) * gates * hidden
    assert r.uncounted == {}
    if cls is nn.LSTM and torch.backends.mkldnn.is_available():
        assert "mkldnn_rnn_layer" in r.by_op


torch.library.define("spikeattn_test::mystery", "(Tensor x, Tensor w) -> Tensor")
torch.library.impl("spikeattn_test::mystery", "CompositeExplicitAutograd", lambda x, w: x @ w)


def test_an_op_without_a_rule_is_listed_warned_and_marks_a_lower_bound():
    torch.manual_seed(0)
    x, w = (torch.rand(4, 8) < 0.5).float(), torch.randn(8, 3)
    model = Fn(lambda x: torch.ops.spikeattn_test.mystery(x, w) + torch.fft.rfft(x).real.sum())
    with pytest.warns(UncountedOpWarning, match="spikeattn_test::mystery"):
        r = count(model, x)
    assert r.uncounted["spikeattn_test::mystery"] == 1 and "aten::_fft_r2c" in r.uncounted
    assert r.lower_bound and r.total("mac") == 0
    energy = r.energy("45nm")
    assert energy["lower_bound"] and "spikeattn_test::mystery" in energy["uncounted"]
    assert "lower bound: no counting rule for" in r.table() and r.as_dict()["uncounted"] == r.uncounted
    # a rule for it (by its name) removes it from the list and counts it
    rule = {"spikeattn_test::mystery": lambda args, kwargs, out, ctx: sa.opcount.OpCount(mac=32)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r2 = count(model, x, extra_rules=rule)
    assert r2.total("mac") == 32 and list(r2.uncounted) == ["aten::_fft_r2c"]
    assert [str(c.message).split(":")[0] for c in caught] == ["spikeattn.opcount has no rule for aten"]


def test_our_models_meet_no_op_without_a_rule():
    torch.manual_seed(0)
    for model, x in [(sa.models.spikformer("spikformer-mini-fmnist").train(), torch.randn(2, 1, 28, 28)),
                     (sa.models.spikegpt("spikegpt-demo", vocab_size=50, n_layers=1, dim=32, context=8),
                      torch.randint(0, 50, (2, 8)))]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UncountedOpWarning)
            assert count(model, x).uncounted == {}
