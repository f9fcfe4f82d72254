"""``layers.seq.residual``: ``x + branch(x)``, written over the branch's output only where nothing can tell."""

from __future__ import annotations

import pytest
import torch

import spikeattn as sa
from spikeattn.layers.mlp import SpikformerBlock
from spikeattn.layers.seq import residual


def _block():
    torch.manual_seed(0)
    block = SpikformerBlock(32, 4).eval()
    for m in block.modules():
        if isinstance(m, torch.nn.BatchNorm1d):  # every layer fires
            with torch.no_grad():
                m.running_var.uniform_(0.5, 2.0)
                m.bias.fill_(1.2)
    return block, torch.randint(0, 3, (2, 3, 16, 32)).float()  # residual streams hold small integers


@pytest.mark.parametrize("branch", ["attn", "mlp"])
def test_inference_sums_over_the_branch_output(branch):
    block, x = _block()
    module = getattr(block, branch)
    with torch.no_grad():
        want = x + module(x)
        got = residual(x, module)
        again = module(x)
    assert torch.equal(got, want) and 0 < (got - x).mean() < 1
    # the branch's output buffer took the sum: a fresh call gives its spikes again, x is untouched
    assert torch.equal(again + x, got) and torch.equal(x, _block()[1])


def test_a_hook_that_keeps_the_output_sees_spikes():
    """A hook on a submodule (a spike recorder) may hold the branch's output: then the sum is a new tensor."""
    block, x = _block()
    kept = []
    block.attn.proj_lif.register_forward_hook(lambda m, i, out: kept.append(out))
    with torch.no_grad():
        y = residual(x, block.attn)
    assert kept[0].unique().tolist() == [0.0, 1.0]
    assert torch.equal(y, x + kept[0])


def test_training_records_a_new_sum():
    block, x = _block()
    block.train()
    x.requires_grad_(True)
    y = residual(x, block.mlp)
    y.sum().backward()
    assert x.grad is not None and y.grad_fn is not None


def test_whole_model_same_bits_as_out_of_place(monkeypatch):
    from spikeattn.layers import embed, mlp

    torch.manual_seed(1)
    model = sa.models.spikformer("spikformer-4-384", depth=2, dim=64, heads=4).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_var.uniform_(0.5, 2.0)
                m.bias.fill_(0.5)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        fast = model(x)
        for module in (embed, mlp):
            monkeypatch.setattr(module, "residual", lambda x, branch: x + branch(x))
        plain = model(x)
    assert torch.equal(fast, plain)
