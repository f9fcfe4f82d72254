"""Counting the spiking attention layers and SpikeGPT's projections."""

import pytest
import torch

from spikeattn import layers, models
from spikeattn.opcount import count
from spikeattn.ops.ssa import cpu as ssa_cpu
from spikeattn.ops.ssa import ssa_tokens


class Attention(torch.nn.Module):
    def __init__(self, order, backend="torch"):
        super().__init__()
        self.order, self.backend = order, backend

    def forward(self, tokens):
        return ssa_tokens(tokens, 2, 0.125, order=self.order, backend=self.backend)


def qkv_spikes(seed=0, shape=(3, 2, 1, 2, 6, 4)):  # (3, T, B, heads, N, d)
    torch.manual_seed(seed)
    return (torch.rand(shape) < 0.4).float()


def as_tokens(qkv):  # (3, T, B, H, N, d) -> [T, B, N, 3 * H * d], the op's layout
    return qkv.permute(1, 2, 4, 0, 3, 5).flatten(3)


def test_ssa_core_both_orders_same_result_different_dense_cost():
    qkv = qkv_spikes()
    q, k, v = qkv.unbind(0)
    qk, kv = count(Attention("qk_first"), as_tokens(qkv)), count(Attention("kv_first"), as_tokens(qkv))
    slices, n, d = 2 * 1 * 2, 6, 4
    assert qk.total("mac") == slices * 2 * n * n * d
    assert kv.total("mac") == slices * 2 * n * d * d
    # exact pairs: first product's pairs + the triple count sum(Q K^T V), the same in both orders
    triples = int((q @ k.transpose(-2, -1) @ v).sum())
    assert qk.total("pairs") == int((q @ k.transpose(-2, -1)).sum()) + triples
    assert kv.total("pairs") == int((k.transpose(-2, -1) @ v).sum()) + triples
    assert set(qk.by_op) == set(kv.by_op) == {"ssa_matmul"}  # the registered op, counted by its rule


@pytest.mark.skipif(not ssa_cpu.is_available(), reason="needs g++ for the fused SSA kernel")
def test_fused_ssa_kernel_counts_as_the_cheaper_association():
    qkv = as_tokens(qkv_spikes(seed=3))  # N=6 > d=4: kv_first is the cheaper association
    fused = count(Attention("auto", backend="cpu"), qkv)
    assert set(fused.by_op) == {"ssa_forward"}
    assert fused.as_dict() == {**count(Attention("kv_first"), qkv).as_dict(), "by_op": fused.by_op}


def test_ssa_module_charges_the_attention_core_to_itself():
    torch.manual_seed(0)
    ssa = layers.SpikingSelfAttention(16, heads=2).train()
    x = (torch.rand(2, 3, 5, 16) < 0.3).float()  # [T, B, N, C]
    r = count(ssa, x)
    rows = r.by_module
    core = rows["(root)"]  # the attention op runs in SSA.forward itself
    assert core["mac"] > 0 and core["real_mac"] == 0  # spike x spike: no real-valued operand
    assert rows["qkv"]["sop"] == int(x.sum()) * 48 and rows["qkv"]["real_mac"] == 0
    assert set(r.firing_rates) == {"qkv_lif", "attn_lif", "proj_lif"}
    assert r.total("neuron") == 2 * 3 * 5 * (48 + 16 + 16)


def test_sdsa_has_no_attention_matmul():
    torch.manual_seed(0)
    sdsa = layers.SpikeDrivenSelfAttention(16, heads=2).train()
    x = (torch.rand(2, 3, 5, 16) < 0.3).float()
    r = count(sdsa, x)
    # Only the two projections are matmuls; the token mixing is masks and sums (elementwise, ignored).
    assert r.total("mac") == 2 * 3 * 5 * 16 * (48 + 16)
    assert r.total("pairs") == 0 and r.total("real_mac") == 0


def test_spikegpt_projections_on_layernorm_output_are_macs_not_acs():
    """REFERENCE §3: SpikeGPT's projections read LayerNorm outputs (real numbers): dense MACs, zero SOPs."""
    torch.manual_seed(0)
    B, T, dim = 2, 16, 32
    model = models.spikegpt("spikegpt-demo", vocab_size=50, n_layers=1, dim=dim, context=T)
    report = count(model, torch.randint(0, 50, (B, T)))
    linears = {p: row for p, row in report.by_module.items() if report.module_types.get(p) == "Linear"}
    assert len(linears) == 8  # key/value/receptance/output, ffn key/receptance/value, head
    for path, row in linears.items():
        assert row["sop"] == 0 and row["real_mac"] == row["mac"] > 0, path
    assert report.by_module["blocks.0.att.key"]["mac"] == B * T * dim * dim
    assert report.by_module["blocks.0.ffn.key"]["mac"] == B * T * dim * 4 * dim
    for lif in ("blocks.0.lif_att", "blocks.0.lif_ffn"):
        assert report.by_module[lif]["neuron"] == B * T * dim  # one update per channel per token
