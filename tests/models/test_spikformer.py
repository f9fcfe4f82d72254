"""Spikformer presets: parameter counts against the paper, input handling, gradients, errors."""

from __future__ import annotations

import json

import pytest
import torch

import spikeattn
from spikeattn.models import Spikformer, SpikformerConfig, list_presets, spikformer
from tests.layers.helpers import assert_all_params_have_grad

MINI = "spikformer-mini-fmnist"


def test_list_presets():
    assert list_presets("spikformer") == ["spikformer-2-256", "spikformer-4-384", "spikformer-8-768", MINI,
                                          "spikformer-v2-8-384", "spikformer-v2-8-512", "spikformer-v2-mini-fmnist"]
    everything = list_presets()
    assert set(list_presets("spikformer")) <= set(everything) and everything == sorted(everything)
    assert any(name.startswith("spikegpt") for name in everything)
    with pytest.raises(ValueError, match="family"):
        list_presets("gpt")


@pytest.mark.parametrize("name,paper", [("spikformer-4-384", 9.32e6), ("spikformer-8-768", 66.34e6),
                                        ("spikformer-2-256", 2.57e6)])
def test_param_count_matches_paper(name, paper):
    kwargs = {"num_classes": 10} if name == "spikformer-4-384" else {}
    n = spikformer(name, **kwargs).num_params()
    assert abs(n - paper) / paper < 0.02, f"{name}: {n} parameters, paper {paper:.0f}"


def test_preset_geometry():
    assert spikformer("spikformer-4-384").embed.grid == (8, 8)
    assert spikformer("spikformer-2-256").embed.grid == (8, 8)
    assert spikformer("spikformer-8-768").embed.grid == (14, 14)
    m = spikformer(MINI)
    assert m.embed.grid == (7, 7) and m.config.T == 1 and m.config.tau == 1.2 and m.config.in_channels == 1


def active(model):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.constant_(m.bias, 1.0)  # see tests.layers.helpers.active_batch
    return model


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_mini_forward_backward_reaches_every_parameter(attention):
    torch.manual_seed(0)
    model = active(spikformer(MINI, attention=attention, T=2))
    x = torch.rand(3, 1, 28, 28)
    logits = model(x)
    assert logits.shape == (3, 10) and logits.dtype == torch.float32
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3, 7])).backward()
    assert_all_params_have_grad(model)


def test_direct_encoding_equals_repeated_sequence_and_state_is_reset():
    torch.manual_seed(0)
    model = active(spikformer(MINI, T=2)).eval()
    x = torch.rand(2, 1, 28, 28)
    a = model(x)
    b = model(x.unsqueeze(0).repeat(2, 1, 1, 1, 1))   # [T, B, C, H, W]
    c = model(torch.cat([x, x]))[:2]                    # another batch size: forward resets neurons
    assert torch.equal(a, b)
    assert torch.allclose(a, c, atol=1e-6)
    assert model(x.unsqueeze(0).repeat(3, 1, 1, 1, 1)).shape == (2, 10)  # any T for sequences


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_other_dtypes(dtype):
    model = spikformer(MINI, T=2).to(dtype)
    y = model(torch.rand(2, 1, 28, 28, dtype=dtype))
    assert y.shape == (2, 10) and y.dtype == dtype and torch.isfinite(y).all()


def test_cifar_preset_forward():
    model = spikformer("spikformer-4-384", T=1, depth=1)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_overrides_and_config_round_trip():
    model = spikformer("spikformer-4-384", num_classes=100, backend="torch", surrogate="atan", surrogate_alpha=2.0)
    assert model.head.out_features == 100
    lif = next(m for m in model.modules() if isinstance(m, spikeattn.neuron.LIF))
    assert lif.backend == "torch" and lif.surrogate == spikeattn.surrogate.ATan(2.0)
    assert lif.tau == 2.0 and lif.detach_reset and lif.v_reset == 0.0
    d = json.loads(json.dumps(model.config.to_dict()))
    assert SpikformerConfig(**d) == model.config
    assert isinstance(Spikformer(SpikformerConfig(**d)), Spikformer)


def test_wrong_image_size_is_a_clear_error():
    model = spikformer(MINI)
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\].*got shape \(2, 1, 32, 32\)"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="in_channels=1"):
        model(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="got shape"):
        model(torch.rand(28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_bad_names_and_configs():
    with pytest.raises(ValueError, match="unknown Spikformer preset"):
        spikformer("spikformer-3-333")
    with pytest.raises(TypeError, match="num_clases"):
        spikformer(MINI, num_clases=10)
    with pytest.raises(ValueError, match="heads"):
        spikformer(MINI, heads=5)
    with pytest.raises(ValueError, match="attention"):
        spikformer(MINI, attention="softmax")
    with pytest.raises(ValueError, match="surrogate"):
        spikformer(MINI, surrogate="relu")
    with pytest.raises(ValueError, match="depth"):
        spikformer(MINI, depth=0)


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_bf16_autocast_training_step(attention):
    model = spikformer(MINI, T=2, attention=attention)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(3, 1, 28, 28))
    torch.nn.functional.cross_entropy(logits.float(), torch.tensor([1, 2, 3])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
