"""Spikformer V2 presets and T=1 / T=4 for V1 and V2: the stem switch, forward shapes, training on a small batch."""

from __future__ import annotations

import pytest
import torch

from spikeattn.layers import SCS, SPS
from spikeattn.models import SpikformerConfig, spikformer


def test_stem_field():
    assert isinstance(spikformer("spikformer-mini-fmnist").embed, SPS)
    model = spikformer("spikformer-v2-mini-fmnist")
    assert isinstance(model.embed, SCS) and model.embed.extra_convs == model.config.stem_extra_convs
    with pytest.raises(ValueError, match="stem"):
        SpikformerConfig(stem="vit")
    assert SpikformerConfig(stem="scs", stem_extra_convs=[0, 1, 2, 3]).stem_extra_convs == (0, 1, 2, 3)  # JSON lists


@pytest.mark.parametrize("name", ["spikformer-v2-8-384", "spikformer-v2-8-512"])
def test_imagenet_presets(name):
    model = spikformer(name)
    c = model.config
    assert (c.img_size, c.num_classes, c.T, c.depth, c.stem) == (224, 1000, 4, 8, "scs")
    assert model.embed.num_tokens == 14 * 14
    print(f"{name}: {model.num_params():,} parameters")


@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("name", ["spikformer-mini-fmnist", "spikformer-v2-mini-fmnist"], ids=["v1", "v2"])
def test_trains_at_T(name, T):
    torch.manual_seed(0)
    model = spikformer(name, T=T, dim=32)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 4
    assert model(x).shape == (16, 10)
    assert model(x.unsqueeze(0).expand(T, *x.shape)).shape == (16, 10)  # time-major input too
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
