"""Inference (and training) fuse each BatchNorm with the LIF after it (``layers.seq.fuse_bn_lif``): whole models give
the same bits as the unfused modules (outputs, and in training gradients and BN statistics), and the fusion stays
off wherever something could tell (autograd recording in eval mode, hooks on the modules)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeattn as sa
import spikeattn.layers.embed as embed
import spikeattn.layers.seq as seq
from tests.conftest import OpNames


def _model(attention):
    torch.manual_seed(0)
    model = sa.models.spikformer("spikformer-4-384", depth=2, dim=64, heads=4, T=3, attention=attention)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):  # trained-like statistics: every layer fires
            with torch.no_grad():
                m.running_mean.normal_(0.0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.fill_(0.8)
    return model.eval()


FUSED = ("spikeattn::bn_lif_inference", "spikeattn::bn_lif_inference_")  # new spikes / over the layer's output


def _fused(names):
    return sum(names.count(name) for name in FUSED)


def _run(model, x):
    assert seq.exact_here()  # its one-time probe (two fused calls) runs before the recording
    with torch.no_grad(), OpNames() as ops:
        out = model(x)
    return out, ops.names


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_model_same_bits_fused_and_unfused(attention, monkeypatch):
    model, x = _model(attention), torch.rand(2, 3, 32, 32)
    fused, names = _run(model, x)
    assert _fused(names) == 5 + 2 * 4  # stem (4 stages + rpe), 4 per block
    # in place over every conv or Linear output but the first stage's (its T frames are one repeated view)
    assert names.count("spikeattn::bn_lif_inference_") == 4 + 2 * 4
    assert "aten::native_batch_norm" not in names and "aten::_native_batch_norm_legit_no_training" not in names
    monkeypatch.setattr(seq, "fuse_bn_lif", lambda *a: False)
    monkeypatch.setattr(embed, "fuse_bn_lif", lambda *a: False)
    plain, names = _run(model, x)
    assert _fused(names) == 0
    assert torch.equal(fused, plain)


def test_hooks_training_and_autograd_turn_it_off():
    model, x = _model("ssa"), torch.rand(2, 3, 32, 32)
    handle = model.blocks[0].mlp.lif1.register_forward_hook(lambda *a: None)
    _, names = _run(model, x)
    assert _fused(names) == 12  # all but the hooked one
    handle.remove()
    with OpNames() as ops:  # eval, but autograd records through the weights
        model(x)
    assert _fused(ops.names) == 0
    model.train()
    _, names = _run(model, x)
    assert _fused(names) == 0


def test_op_counter_sees_every_module():
    model, x = _model("ssa"), torch.rand(2, 3, 32, 32)
    with torch.no_grad(), OpNames() as ops:
        report = sa.opcount.count(model, x)
    assert _fused(ops.names) == 0
    neurons = [n for n, m in model.named_modules() if isinstance(m, sa.neuron.LIF)]
    assert len(neurons) == 5 + 2 * 5 and set(report.firing_rates) == set(neurons)


def test_a_hooked_pool_module_runs():
    """The stems pool through ops.spike_pool without calling ``ConvBNLIF.pool``; with a hook on it, the module
    runs (what the hook expects) and the tokens do not change."""
    model, x = _model("ssa"), torch.rand(2, 3, 32, 32)
    plain, _ = _run(model, x)
    seen = []
    handle = model.embed.stages[2].pool[0].register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    hooked, _ = _run(model, x)
    handle.remove()
    assert seen == [(2 * 3, 32, 16, 16)] and torch.equal(hooked, plain)  # T*B frames of dim/2 = 32 channels


def _train_steps(model, x, labels, fused, monkeypatch, steps=2):
    """``steps`` SGD steps; per step the logits, every gradient, the BN state and the ops that ran."""
    with monkeypatch.context() as m:
        if not fused:
            m.setattr(seq, "fuse_bn_lif", lambda *a: False)
            m.setattr(embed, "fuse_bn_lif", lambda *a: False)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        model.train()
        results = []
        for _ in range(steps):
            opt.zero_grad()
            with OpNames() as ops:
                out = model(x)
                torch.nn.functional.cross_entropy(out, labels).backward()
            results.append((out.detach(), [p.grad.clone() for p in model.parameters()],
                            [b.clone() for b in model.buffers()], ops.names))
            opt.step()
    return results


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_training_same_bits_fused_and_unfused(attention, monkeypatch):
    """Training fuses each training-mode BN with its LIF (``spikeattn::bn_lif_train``): over two SGD steps the
    logits, every parameter's gradient and the BN running statistics equal the unfused modules' bit for bit."""
    x, labels = torch.rand(2, 3, 32, 32), torch.tensor([3, 7])
    fused = _train_steps(_model(attention), x, labels, True, monkeypatch)
    plain = _train_steps(_model(attention), x, labels, False, monkeypatch)
    for (out, grads, buffers, names), (out_p, grads_p, buffers_p, names_p) in zip(fused, plain):
        assert names.count("spikeattn::bn_lif_train") == 5 + 2 * 4 and "aten::native_batch_norm" not in names
        assert names_p.count("aten::native_batch_norm") == 5 + 2 * 4 and "spikeattn::bn_lif_train" not in names_p
        assert torch.equal(out, out_p)
        assert all(torch.equal(g, g_p) for g, g_p in zip(grads, grads_p))
        assert all(torch.equal(b, b_p) for b, b_p in zip(buffers, buffers_p))


def test_training_fusion_off_under_hooks_and_other_neurons():
    """A hooked module keeps its layer unfused (the hook sees it run); so does a PLIF neuron (its decay learns) and
    a BN subclass with its own forward (SyncBatchNorm: outside a process group it runs F.batch_norm)."""
    model, x = _model("ssa"), torch.rand(2, 3, 32, 32)
    model.train()
    handle = model.blocks[1].attn.qkv.bn.register_forward_hook(lambda *a: None)
    with OpNames() as ops:
        model(x)
    handle.remove()
    assert ops.names.count("spikeattn::bn_lif_train") == 12 and ops.names.count("aten::native_batch_norm") == 1
    model.blocks[0].mlp.lif2 = sa.neuron.PLIF(init_tau=2.0, v_reset=0.0, detach_reset=True, stateful=False)
    with OpNames() as ops:
        model(x)
    assert ops.names.count("spikeattn::bn_lif_train") == 12 and ops.names.count("aten::native_batch_norm") == 1
    model.blocks[1].mlp.fc1.bn = nn.SyncBatchNorm(256)  # its own forward (statistics across processes): runs
    with OpNames() as ops:
        model(x)
    assert ops.names.count("spikeattn::bn_lif_train") == 11 and ops.names.count("aten::native_batch_norm") == 2
