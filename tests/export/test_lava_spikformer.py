"""A small Spikformer (SPS stem, SSA or SDSA, residual adds) in Lava: spikes equal to torch at every
neuron layer and every time step on Fashion-MNIST; logits equal to fp32 rounding; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import NotExportable, run_lava
from spikeattn.export.artifact import write
from spikeattn.export.spikformer import fold_spikformer, spikformer_graph
from spikeattn.models import spikformer
from tests.export.helpers import fashion_input, require_lava

T, B = 2, 3


def small_spikformer(attention: str, stem: str = "sps") -> nn.Module:
    """1 block, dim 32, 49 tokens. BN statistics recalibrated on 16 images (as after training) and
    BN shifts around 0.5, so every neuron layer fires 14-65% of the time."""
    torch.manual_seed(3)
    v2 = dict(stem="scs", stem_extra_convs=(1, 0, 1, 2)) if stem == "scs" else {}
    model = spikformer("spikformer-mini-fmnist", depth=1, dim=32, heads=2, T=T, pool_stages=(0, 1),
                       attention=attention, tau=2.0, **v2)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.momentum = None                          # cumulative average over the calibration pass
    with torch.no_grad():
        model.train()(fashion_input(16, T))
        for bn in bns:
            bn.weight.uniform_(0.8, 1.2)
            bn.bias.uniform_(0.2, 0.8)
    return model.eval()


def neuron_traces(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """``{module path: [T, B, ...] spikes}`` of every neuron, and the logits."""
    out, hooks = {}, []
    for path, m in model.named_modules():
        if isinstance(m, N.LIF):
            hooks.append(m.register_forward_hook(lambda mod, a, y, path=path: out.__setitem__(path, y.detach().numpy())))
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return out, logits


@pytest.mark.parametrize("attention,stem", [("ssa", "sps"), ("sdsa", "sps"), ("ssa", "scs")])
def test_spikformer_spikes_equal(attention, stem, tmp_path):
    require_lava()
    folded = fold_spikformer(small_spikformer(attention, stem))
    x = fashion_input(B, T)
    graph, arrays = spikformer_graph(folded, x)
    art = write(tmp_path / "net", graph, arrays)
    out, layers = run_lava(art, x.numpy(), return_layers=True)
    ref, logits = neuron_traces(folded, x)
    lif_nodes = [n["name"] for n in graph["nodes"] if n["op"] == "lif"]
    assert sorted(lif_nodes) == sorted(ref), "every torch neuron has its node"
    for name in lif_nodes:
        want, got = ref[name], layers[name].reshape(ref[name].shape)
        assert 0.005 < want.mean() < 0.995, f"{name}: firing rate {want.mean():.3f}, the check would be vacuous"
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"{name}: {len(bad)}/{got.size} spikes differ, first at {bad[0]}"
    # the residual sums: integers up to 2 (SPS) and 3 (block), exact too
    for name in ("embed.add", f"blocks.0.add1", "blocks.0.add2"):
        assert layers[name].max() >= 2
    if stem == "scs":   # Spikformer V2's stem: its residual convs are in the graph and fire
        assert sum(n.startswith("embed.extras.") for n in lif_nodes) == 4
    np.testing.assert_allclose(out.mean(0), logits.numpy(), rtol=1e-5, atol=1e-5)


def test_fold_keeps_function():
    model = small_spikformer("ssa")
    x = fashion_input(2, T)
    folded = fold_spikformer(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    a = model.embed.stages[0].conv(x)
    b = folded.embed.stages[0].conv(x)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    y = (torch.rand(T, 2, 49, 32) < 0.3).float()
    torch.testing.assert_close(folded.blocks[0].attn.qkv(y), model.blocks[0].attn.qkv(y), rtol=1e-5, atol=1e-5)


def test_not_folded_bn_and_unknown_layer_listed():
    model = small_spikformer("ssa")
    model.blocks[0].mlp = nn.GELU()                 # not a spiking layer
    model.train()                                   # BNs cannot be folded in training mode
    with pytest.raises(NotExportable) as e:
        spikformer_graph(fold_spikformer(model), fashion_input(1, T))
    paths = [p for p, _, _ in e.value.problems]
    assert "blocks.0.mlp" in paths
    assert "blocks.0.attn.qkv.bn" in paths and "embed.stages.0.conv.1" in paths
    assert len(paths) >= 8                          # every BN of the model, at once


def test_input_must_be_time_major_images():
    model = fold_spikformer(small_spikformer("ssa"))
    with pytest.raises(ValueError, match="T, B, C, H, W"):
        spikformer_graph(model, torch.rand(1, 28, 28))
    graph, _ = spikformer_graph(model, torch.rand(2, 1, 28, 28))   # images: repeated config.T times
    assert graph["nodes"][0]["shape"] == [1, 28, 28]


def test_to_lava_dispatches_spikformer(tmp_path):
    """``to_lava`` folds and exports a Spikformer given plain images (no Lava run needed)."""
    from spikeattn.export import to_lava
    art = to_lava(small_spikformer("ssa"), tmp_path / "sf", fashion_input(1, T)[0])
    ops = [n["op"] for n in art.graph["nodes"]]
    assert ops.count("add") == 3 and "ssa" in ops and ops[-1] == "readout"
    assert not any("bn" in n["name"] for n in art.graph["nodes"])
