"""Random shapes, dtypes and values at the public layers and models: each call either works or raises a
ValueError/TypeError raised by spikeattn itself (its innermost frame in the package), never from deep inside torch."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spikeattn as sa

PACKAGE = Path(sa.__file__).resolve().parent
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64]
VALUES = st.sampled_from(["zeros", "ones", "randn", "spikes", "inf", "-inf", "nan"])


def _layers() -> dict:
    torch.manual_seed(0)
    tiny_former = sa.models.spikformer("spikformer-mini-fmnist", dim=16, heads=2, depth=1, T=1, img_size=8)
    tiny_gpt = sa.models.spikegpt("spikegpt-demo", vocab_size=11, dim=16, n_layers=1, context=16)
    # name: (module or callable, the valid input shape, "float" or "tokens" input)
    return {
        "LIF": (sa.neuron.LIF(), (2, 3, 4), "float"),
        "SSA": (sa.layers.SpikingSelfAttention(16, 2), (2, 2, 3, 16), "float"),
        "SDSA": (sa.layers.SpikeDrivenSelfAttention(16, 2), (2, 2, 3, 16), "float"),
        "SPS": (sa.layers.SPS(1, 16, 8), (1, 2, 1, 8, 8), "float"),
        "SCS": (sa.layers.SCS(1, 16, 8), (1, 2, 1, 8, 8), "float"),
        "SpikformerBlock": (sa.layers.SpikformerBlock(16, 2), (2, 2, 3, 16), "float"),
        "TimeMix": (sa.layers.SpikingTimeMix(16, 0, 1), (2, 3, 16), "float"),
        "ChannelMix": (sa.layers.SpikingChannelMix(16, 0, 1), (2, 3, 16), "float"),
        "Spikformer": (tiny_former, (2, 1, 8, 8), "float"),
        "SpikeGPT": (tiny_gpt, (2, 5), "tokens"),
        "SpikeGPT.generate": (lambda idx: tiny_gpt.generate(idx, 2), (1, 3), "tokens"),
    }


LAYERS = _layers()


@st.composite
def shapes(draw, valid: tuple[int, ...]):
    """The valid shape, or one mutated: a dim dropped or added, or one size set to 0, 1 or another value."""
    shape = list(valid)
    kind = draw(st.sampled_from(["valid", "drop", "add", "resize", "resize"]))
    if kind == "drop" and len(shape) > 1:
        del shape[draw(st.integers(0, len(shape) - 1))]
    elif kind == "add":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 3)))
    elif kind == "resize":
        shape[draw(st.integers(0, len(shape) - 1))] = draw(st.sampled_from([0, 1, 2, 5, 9]))
    return tuple(shape)


def _tensor(shape, dtype, values, tokens: bool) -> torch.Tensor:
    if tokens and not dtype.is_floating_point and dtype not in (torch.bool, torch.complex64):
        return torch.randint(0, 14, shape, dtype=dtype)  # some ids above the vocabulary (11)
    x = {"zeros": torch.zeros, "ones": torch.ones, "randn": torch.randn}.get(values, torch.rand)(shape)
    if values == "spikes":
        x = x.round()
    elif values in ("inf", "-inf", "nan") and x.numel():
        x.view(-1)[0] = float(values)
    return x.to(dtype)


def _raised_by_spikeattn(err: BaseException) -> bool:
    innermost = traceback.extract_tb(err.__traceback__)[-1]
    return Path(innermost.filename).resolve().is_relative_to(PACKAGE)


@pytest.mark.parametrize("name", list(LAYERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_failure_is_a_clear_error_from_spikeattn(name, data):
    layer, valid, kind = LAYERS[name]
    shape = data.draw(shapes(valid), label="shape")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    x = _tensor(shape, dtype, data.draw(VALUES, label="values"), kind == "tokens")
    training = data.draw(st.booleans(), label="training")
    if isinstance(layer, torch.nn.Module):
        layer.train(training)
        sa.reset(layer)
    try:
        with torch.no_grad():
            layer(x)
    except (ValueError, TypeError) as e:
        assert _raised_by_spikeattn(e), f"{type(e).__name__} from inside torch, not spikeattn: {e}"
        assert str(e), "an error without a message"
    # any other exception type fails the test by propagating
