"""Surrogates: Heaviside forward, closed-form backward equal to the derivative of the smooth function."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn import surrogate as sg
from tests.conftest import SURROGATES

# The smooth primitives g(x) whose derivative each surrogate's backward is (REFERENCE.md §1).
PRIMITIVES = {
    "ATan": lambda x, a: torch.atan(math.pi / 2 * a * x) / math.pi + 0.5,
    "Sigmoid": lambda x, a: torch.sigmoid(a * x),
    "FastSigmoid": lambda x, a: x / (1 + a * x.abs()),
    "Triangle": lambda x, a: torch.where(x.abs() < a, (x / a) - x * x.abs() / (2 * a * a), torch.sign(x) / 2),
    "Rectangle": lambda x, a: torch.clamp(x / a, -0.5, 0.5),
}


@pytest.mark.parametrize("s", SURROGATES, ids=lambda s: type(s).__name__)
def test_backward_is_derivative_of_primitive(s):
    # Avoid the kinks of Triangle/Rectangle where the derivative is one-sided.
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    x = x[(x.abs() - s.param).abs() > 1e-3]
    x = x[(x.abs() - s.param / 2).abs() > 1e-3]
    xg = x.clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(PRIMITIVES[type(s).__name__](xg, s.param).sum(), xg)
    torch.testing.assert_close(s.grad(x), g_auto, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("s", SURROGATES, ids=lambda s: type(s).__name__)
def test_forward_heaviside_and_backward_through_autograd(s):
    x = torch.tensor([-2.0, -1e-8, 0.0, 1e-8, 2.0], requires_grad=True)
    y = s(x)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # fires at exactly zero (>=)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, s.grad(x.detach()))


def test_triangle_slope_sign():
    # snntorch once shipped a triangular surrogate with the wrong slope sign: ours peaks at 0.
    g = sg.Triangle(1.0).grad(torch.tensor([-0.5, 0.0, 0.5]))
    assert g.tolist() == [0.5, 1.0, 0.5]


DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("s", SURROGATES, ids=lambda s: type(s).__name__)
@settings(max_examples=200, deadline=None)
@given(bits=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=16), min_size=1, max_size=64))
def test_no_nan_or_inf_anywhere(s, dtype, bits):
    """snntorch's sigmoid returns NaN below about -3.5 in fp32; ours is finite on the whole range."""
    x = torch.tensor(bits, dtype=torch.float32).to(dtype)
    g = s.grad(x)
    assert g.dtype == dtype
    assert torch.isfinite(g).all() and (g >= 0).all()


@pytest.mark.parametrize("s", SURROGATES, ids=lambda s: type(s).__name__)
@settings(max_examples=100, deadline=None)
@given(v=st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_no_nan_fp32_full_range(s, v):
    g = s.grad(torch.tensor([v, -v], dtype=torch.float32))
    assert torch.isfinite(g).all()


def test_sigmoid_far_negative_is_zero_not_nan():
    g = sg.Sigmoid(25.0).grad(torch.tensor([-1e4, -3.6, -40.0]))
    assert torch.isfinite(g).all() and g[0] == 0


@pytest.mark.parametrize("cls", [sg.ATan, sg.Sigmoid, sg.FastSigmoid, sg.Triangle, sg.Rectangle])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_parameter(cls, bad):
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        cls(bad)


def test_ids_match_kernel_header():
    from spikeattn._paths import kernel_dir

    header = (kernel_dir() / "surrogate.cuh").read_text()
    for name, i in sg.SURROGATE_IDS.items():
        kernel_name = {"ATan": "SG_ATAN", "Sigmoid": "SG_SIGMOID", "FastSigmoid": "SG_FAST_SIGMOID",
                       "Triangle": "SG_TRIANGLE", "Rectangle": "SG_RECTANGLE"}[name]
        assert f"{kernel_name} = {i}" in header
