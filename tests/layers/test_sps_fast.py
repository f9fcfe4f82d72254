"""SPS's first conv runs once for T repeated frames (an ``expand``-ed input, time stride 0): the same
spikes as T*B convs, gradients to fp32 rounding (expand's backward sums the T frames' gradients
before the conv's weight gradient instead of after)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import spikeattn as sa
from spikeattn.layers import SPS
from tests.conftest import assert_close


def _pair(in_channels, dim, img, pools):
    fast = SPS(in_channels, dim, img, pools)
    for m in fast.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.bias, 0.5)  # firing in every stage, so the comparison means something
    ref = SPS(in_channels, dim, img, pools)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def _conv_batches(sps: SPS) -> list[int]:
    seen = []
    sps.stages[0].conv[0].register_forward_hook(lambda m, a, out: seen.append(a[0].shape[0]))
    return seen


@settings(max_examples=8, deadline=None)
@given(t=st.integers(2, 4), b=st.integers(1, 3), in_channels=st.sampled_from([1, 3]), dim=st.sampled_from([16, 32]),
       img=st.sampled_from([8, 11]), pools=st.sampled_from([(2, 3), (0, 1), ()]), seed=st.integers(0, 999))
def test_repeated_frames_same_spikes_as_every_frame(t, b, in_channels, dim, img, pools, seed):
    torch.manual_seed(seed)
    fast, ref = _pair(in_channels, dim, img, pools)
    batches = _conv_batches(fast)
    image = torch.rand(b, in_channels, img, img)
    repeated = image.unsqueeze(0).expand(t, *image.shape)     # stride 0 over time: direct encoding
    assert repeated.stride(0) == 0
    sa.reset(fast), sa.reset(ref)
    out, expected = fast(repeated), ref(repeated.contiguous())
    assert batches == [b]                                       # one conv of the B images, not T*B
    assert torch.equal(out, expected)
    assert 0 < expected.mean() < 2                              # neurons fire and stay silent somewhere
    out.sum().backward()
    expected.sum().backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, 1e-5, 1e-6, what=name)


def test_time_major_input_of_distinct_frames_runs_every_frame():
    fast, _ = _pair(3, 16, 8, (2, 3))
    batches = _conv_batches(fast)
    fast(torch.rand(3, 2, 3, 8, 8))
    assert batches == [6]


def test_model_with_images_uses_one_conv_and_matches_time_major_input():
    model = sa.models.spikformer("spikformer-mini-fmnist", T=3)
    batches = _conv_batches(model.embed)
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        a = model(images)
        b = model(images.unsqueeze(0).repeat(3, 1, 1, 1, 1))   # the same frames, stored T times
    assert batches == [2, 6]
    assert torch.equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_frames_conv_does_not_depend_on_its_batch(threads):
    """The premise of the saving, at Spikformer-4-384's first conv: batch B and batch T*B give the same bits."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        conv = nn.Conv2d(3, 48, 3, padding=1, bias=False)
        x = torch.rand(8, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(conv(x), conv(x.repeat(4, 1, 1, 1))[:8])
    finally:
        torch.set_num_threads(old)
