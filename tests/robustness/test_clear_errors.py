"""Each ordinary mistake of issue 17 gets a clear ValueError/TypeError from spikeattn naming the problem."""

from __future__ import annotations

import pytest
import torch

import spikeattn as sa


@pytest.fixture(scope="module")
def gpt():
    return sa.models.spikegpt("spikegpt-demo", vocab_size=11, dim=16, n_layers=1).eval()


@pytest.mark.parametrize("shape", [(1, 0), (0, 3)])
def test_spikegpt_on_an_empty_sequence(gpt, shape):
    with pytest.raises(ValueError, match=r"idx must be a non-empty \[B, T\]"):
        gpt(torch.zeros(shape, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"idx must be a non-empty \[B, T\]"):
        gpt.generate(torch.zeros(shape, dtype=torch.int64), 3)


@pytest.mark.parametrize("kw, problem", [
    ({"top_k": 0}, "top_k must be None or an int >= 1"), ({"top_k": -2}, "top_k must be None or an int >= 1"),
    ({"top_p": 0.0}, r"top_p must be None or in \(0, 1\]"), ({"top_p": 1.5}, r"top_p must be None or in \(0, 1\]"),
    ({"temperature": -1.0}, "temperature must be a finite number >= 0"),
    ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
    ({"max_new_tokens": -1}, "max_new_tokens must be an int >= 0"),
])
def test_generate_arguments(gpt, kw, problem):
    args = {"max_new_tokens": 2, **kw}
    with pytest.raises(ValueError, match=problem):
        gpt.generate(torch.zeros(1, 2, dtype=torch.int64), **args)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_spikformer_on_images_of_another_dtype(dtype):
    model = sa.models.spikformer("spikformer-mini-fmnist", dim=16, heads=2, depth=1, T=1).eval()
    with pytest.raises(TypeError, match=rf"images is {dtype} but SPS's parameters are torch.float32: convert"):
        model(torch.rand(2, 1, 28, 28, dtype=dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast torch casts per op: allowed
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_ssa_single_token_single_sample_in_train_mode():
    ssa = sa.layers.SpikingSelfAttention(16, 2).train()
    with pytest.raises(ValueError, match="BatchNorm.*needs more than one value per channel.*call .eval"):
        ssa(torch.ones(1, 1, 1, 16))
    ssa.eval()
    assert ssa(torch.ones(1, 1, 1, 16)).shape == (1, 1, 1, 16)  # one sample works in eval mode
    assert sa.layers.SpikingSelfAttention(16, 2).train()(torch.ones(2, 1, 1, 16)).shape == (2, 1, 1, 16)  # T=2 is a batch


def test_spikformer_single_image_in_train_mode():
    model = sa.models.spikformer("spikformer-mini-fmnist", dim=16, heads=2, depth=1, T=1, img_size=8,
                                 pool_stages=(0, 1, 2)).train()  # 8 -> 1x1 token
    with pytest.raises(ValueError, match="needs more than one value per channel"):
        model(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("layer, x, problem", [
    (sa.layers.SpikingSelfAttention(16, 2), torch.ones(2, 0, 3, 16), "empty dimension B=0"),
    (sa.layers.SpikingTimeMix(16, 0, 1), torch.ones(2, 0, 16), "empty dimension T=0"),
    (sa.layers.SpikingChannelMix(16, 0, 1), torch.ones(2, 3, 8), "must have last dim C=16"),
    (sa.layers.SPS(1, 16, 8), torch.ones(1, 2, 3, 8, 8), r"SPS expects images \[T, B, 1, 8, 8\]"),
])
def test_layer_shapes(layer, x, problem):
    with pytest.raises(ValueError, match=problem):
        layer(x)
