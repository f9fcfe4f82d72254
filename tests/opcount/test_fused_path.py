"""Counting runs the path training runs: the fused ops, each counted by the rule for its
torch.library name, with the same logits as an uncounted forward and the same totals as the
plain-torch path."""

import warnings

import pytest
import torch

import spikeattn as sa
from spikeattn.opcount import count
from spikeattn.ops import linear as lin
from spikeattn.ops import relu_square as rs
from spikeattn.ops import sigmoid_gate as sgate
from spikeattn.ops import ssa as ssa_ops

needs_kernels = pytest.mark.skipif(not (ssa_ops.cpu.is_available() and lin.onednn.is_available()),
                                   reason="needs g++ (fused SSA) and a torch with oneDNN")


def spied(monkeypatch):
    """Count calls of the fused SSA kernel and of oneDNN's GEMM (what ran, not what was asked)."""
    calls = {"ssa_cpu": 0, "onednn": 0}

    def wrap(table, key, name):
        fn = table[key]

        def spy(*args):
            calls[name] += 1
            return fn(*args)

        monkeypatch.setitem(table, key, spy)

    wrap(ssa_ops.BACKENDS, "cpu", "ssa_cpu")
    wrap(lin.BACKENDS, "onednn", "onednn")
    return calls


@needs_kernels
def test_counting_a_spikformer_runs_the_fused_path_with_the_same_logits_and_totals(monkeypatch, onednn_preferred):
    torch.manual_seed(0)
    model = sa.models.spikformer("spikformer-mini-fmnist", dim=128, heads=4).eval()
    x = torch.randn(8, 1, 28, 28)
    calls = spied(monkeypatch)
    with torch.no_grad():
        plain = model(x)
    uncounted = dict(calls)
    counted = []
    handle = model.register_forward_hook(lambda m, a, out: counted.append(out))
    fused = count(model, x)
    handle.remove()
    assert uncounted["ssa_cpu"] > 0 and uncounted["onednn"] > 0
    assert {k: v - uncounted[k] for k, v in calls.items()} == uncounted  # counting ran the same kernels
    assert torch.equal(counted[0], plain)
    assert {"spike_linear", "ssa_forward"} <= set(fused.by_op)

    # the plain-torch path (F.linear, the matmul SSA op) gives the same counts
    monkeypatch.setattr(lin, "MIN_ONEDNN_MACS", 2**62)
    monkeypatch.setattr(ssa_ops, "resolve_backend", lambda backend, qkv: "torch")
    before = dict(calls)
    slow = count(model, x)
    assert calls == before  # neither kernel ran
    assert slow.by_module == fused.by_module and slow.total("sop") > 0
    assert {op: row for op, row in slow.by_op.items() if op != "ssa_matmul"} == \
           {op: row for op, row in fused.by_op.items() if op != "ssa_forward"}
    assert slow.by_op["ssa_matmul"] == fused.by_op["ssa_forward"]


@pytest.mark.skipif(not rs.cpu.is_available(), reason="needs g++ for the fused relu^2 / sigmoid gate")
def test_counting_a_spikegpt_runs_relu_square_and_sigmoid_gate_with_the_reference_totals(monkeypatch):
    """SpikeGPT's registered relu^2 and sigmoid-gate ops: run under the counter, nothing uncounted, and the
    same totals per module and per op as the plain torch ops; the MACs around them by hand."""
    from spikeattn.opcount import UncountedOpWarning

    torch.manual_seed(0)
    B, T, dim = 4, 32, 128  # the gates [B, T, dim] and relu^2 [B, T, 4 dim] are >= MIN_FUSED_NUMEL
    assert B * T * dim >= rs.MIN_FUSED_NUMEL
    model = sa.models.spikegpt("spikegpt-demo", vocab_size=50, n_layers=1, dim=dim, context=T).eval()
    idx = torch.randint(0, 50, (B, T))
    calls = {"relu_square": 0, "sigmoid_gate": 0}
    for module, name in ((rs, "relu_square"), (sgate, "sigmoid_gate")):
        fn = module.BACKENDS["cpu"]
        monkeypatch.setitem(module.BACKENDS, "cpu", lambda *a, fn=fn, name=name: calls.__setitem__(name, calls[name] + 1) or fn(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedOpWarning)
        fused = count(model, idx)
    assert calls == {"relu_square": 1, "sigmoid_gate": 2} and fused.uncounted == {}
    assert fused.by_module["blocks.0.ffn.value"]["real_mac"] == B * T * 4 * dim * dim  # reads relu^2's output
    assert fused.by_module["blocks.0.att.output"]["real_mac"] == B * T * dim * dim  # reads the gate's output
    for module in (rs, sgate):
        monkeypatch.setitem(module.BACKENDS, "cpu", module.BACKENDS["torch"])
    plain = count(model, idx)
    assert plain.by_module == fused.by_module and plain.by_op == fused.by_op and plain.total("mac") > 0
