"""spike_conv2d and spike_conv_grad_weight: both CPU routes (the direct gather-sum kernel, and patches
through the Linear's kernel) against the fp64 dense reference (shapes, strides, padding, dilation,
densities, the complement of mostly-one spikes, counts), the same bits at 1 and 2 threads, the route
each CPU takes, the dense fallback, the op's forward bits and gradients, and bad input.

Tolerance: the kernel sums each weight-gradient entry in fp32 over up to N*OH*OW terms in a fixed
order; it must agree with the fp64 result to ``|err| <= 1e-5 * (|ref| + max|ref|)`` (``assert_close``).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from spikeattn.ops import spike_conv as sc_ops
from spikeattn.ops.spike_conv import cpu, patches, spike_conv2d, spike_conv_grad_weight
from spikeattn.ops.spike_linear import cpu as linear_cpu
from spikeattn.ops.spike_conv.grad_weight import out_size
from tests.conftest import assert_close, at_threads

needs_cpu_kernel = pytest.mark.skipif(not cpu.is_available(), reason="needs g++ for the CPU kernel")
RTOL, ATOL = 1e-5, 1e-6


def exact(grad_y, x, weight_size, stride, padding, dilation):
    return spike_conv_grad_weight(grad_y.double(), x, weight_size, stride, padding, dilation, backend="torch")




@pytest.fixture(params=["direct", "patches"])
def kernel_only(monkeypatch, request):
    """One route at any density (the Linear kernel's too), and a failure if a dense fallback runs instead."""
    monkeypatch.setattr(cpu, "route", lambda *args: request.param)
    monkeypatch.setattr(linear_cpu, "max_fraction", lambda in_features: 1.0)

    def no_dense(*args):
        raise AssertionError("a dense fallback ran instead of the kernel")

    monkeypatch.setattr(cpu, "naive_spike_conv_grad_weight", no_dense)
    monkeypatch.setattr(linear_cpu, "linear", no_dense)
    return request.param


def spikes(shape, density, counts, gen):
    x = (torch.rand(shape, generator=gen) < density).to(torch.uint8)
    return x * torch.randint(1, 256, shape, generator=gen, dtype=torch.uint8) if counts else x


geometry = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 5), "o": st.integers(1, 70),  # o > 32: several blocks, a tail
    "h": st.integers(1, 11), "w": st.integers(1, 11), "kh": st.integers(1, 4), "kw": st.integers(1, 7),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "padding": st.tuples(st.integers(0, 3), st.integers(0, 3)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "density": st.sampled_from([0.0, 0.1, 0.3, 0.7, 0.95, 1.0]), "counts": st.booleans(),
    "threads": st.sampled_from([1, 2]), "seed": st.integers(0, 2**16),
})


@needs_cpu_kernel
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the fixture only patches
@given(geometry)
def test_kernel_matches_fp64_reference(kernel_only, p):
    oh = out_size(p["h"], p["kh"], p["stride"][0], p["padding"][0], p["dilation"][0])
    ow = out_size(p["w"], p["kw"], p["stride"][1], p["padding"][1], p["dilation"][1])
    if oh < 1 or ow < 1:
        return  # no such convolution (F.conv2d refuses it too)
    gen = torch.Generator().manual_seed(p["seed"])
    x = spikes((p["n"], p["c"], p["h"], p["w"]), p["density"], p["counts"], gen)
    grad_y = torch.randn(p["n"], p["o"], oh, ow, generator=gen)
    size = (p["o"], p["c"], p["kh"], p["kw"])
    args = (size, p["stride"], p["padding"], p["dilation"])
    got = at_threads(p["threads"], lambda: spike_conv_grad_weight(grad_y, x, *args, backend="cpu"))
    assert got.dtype == torch.float32 and got.shape == size
    assert_close(got, exact(grad_y, x, *args), RTOL, ATOL, what=str(p))


@needs_cpu_kernel
@pytest.mark.parametrize("kind", ["sparse", "complement", "counts"])
@pytest.mark.parametrize("outputs", [40, 150])
def test_same_bits_for_any_thread_count(kernel_only, kind, outputs):
    gen = torch.Generator().manual_seed(1)
    # 40 columns: the direct kernel sums bands of 4 input rows (13 rows: a partial last band). Patches: 520
    # positions per sample, so the Linear kernel's token chunks of 128 straddle samples in grad_y's own
    # layout; 150 outputs: 2 full blocks of 64 and a narrow one, 40: the narrow one only.
    x = spikes((3, 7, 13, 40), {"sparse": 0.25, "complement": 0.8, "counts": 0.2}[kind], kind == "counts", gen)
    grad_y = torch.randn(3, outputs, 13, 40, generator=gen)
    size = (outputs, 7, 3, 3)
    one, two = (at_threads(n, lambda: spike_conv_grad_weight(grad_y, x, size, 1, 1, backend="cpu")) for n in (1, 2))
    assert torch.equal(one, two)
    assert_close(two, exact(grad_y, x, size, 1, 1, 1), RTOL, ATOL)


@needs_cpu_kernel
def test_hand_computed(kernel_only):
    # 1x1 image, 3x3 kernel, padding 1: only the centre tap sees the pixel; grad_y = 2 at the one output.
    x = torch.ones(1, 1, 1, 1, dtype=torch.uint8) * 3
    got = spike_conv_grad_weight(torch.full((1, 1, 1, 1), 2.0), x, (1, 1, 3, 3), 1, 1, backend="cpu")
    assert torch.equal(got, torch.tensor([[[[0.0, 0, 0], [0, 6, 0], [0, 0, 0]]]]))


@needs_cpu_kernel
def test_dense_above_max_fraction(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu, "_entry", lambda: calls.append(1) or (lambda *a: 1))
    x = spikes((2, 3, 6, 6), 0.5, False, torch.Generator().manual_seed(2))  # listed fraction ~0.5 > max_fraction() on any CPU
    assert cpu.plan(x)[2] > cpu.max_fraction()
    grad_y = torch.randn(2, 4, 6, 6)
    got = spike_conv_grad_weight(grad_y, x, (4, 3, 3, 3), 1, 1, backend="cpu")
    assert not calls and torch.equal(got, spike_conv_grad_weight(grad_y, x, (4, 3, 3, 3), 1, 1, backend="torch"))


@pytest.mark.parametrize("avx512, listed, out_channels, expected", [
    (True, 0.35, 96, "direct"), (True, 0.36, 384, "dense"), (False, 0.05, 384, "patches"),
    (False, 0.3, 128, "patches"), (False, 0.31, 384, "dense"), (False, 0.05, 96, "dense")])
def test_the_route_follows_the_cpu(monkeypatch, avx512, listed, out_channels, expected):
    """The direct gather-sum where it was measured faster than oneDNN's dense backward (AVX-512 CPUs);
    without AVX-512, patches through the Linear kernel for 128+ output channels up to 30% listed."""
    monkeypatch.setattr(cpu, "has_avx512", lambda: avx512)
    assert cpu.max_fraction() == (cpu.MAX_FRACTION if avx512 else 0.0)
    assert cpu.route(listed, out_channels) == expected
    # Spikformer-4-384's stage 2 (batch 8, T=4) fits the patches' memory; a stem at 224x224, batch 64, not
    stage2, imagenet = 32 * 32 * 32 * 9 * 96, 64 * 112 * 112 * 9 * 128
    assert cpu.route(listed, out_channels, stage2) == expected
    assert cpu.route(listed, out_channels, imagenet) == ("direct" if expected == "direct" else "dense")


@needs_cpu_kernel
def test_auto_takes_the_patches_route_without_avx512(monkeypatch):
    """On an AVX2-only CPU, Spikformer's stage-3 shape at its benchmark density (mostly ones: the
    complement) runs the Linear kernel on patches, not the direct kernel or torch's backward."""
    monkeypatch.setattr(cpu, "has_avx512", lambda: False)
    calls = []
    real = patches.grad_weight
    monkeypatch.setattr(patches, "grad_weight", lambda *a: calls.append(a[-1]) or real(*a))
    monkeypatch.setattr(cpu, "_entry", lambda: pytest.fail("the direct kernel ran"))
    gen = torch.Generator().manual_seed(4)
    x, grad_y = spikes((2, 12, 16, 16), 0.83, False, gen), torch.randn(2, 128, 16, 16, generator=gen)
    got = spike_conv_grad_weight(grad_y, x, (128, 12, 3, 3), 1, 1)
    assert calls == [True]  # complement: the kernel listed the zeros
    assert_close(got, exact(grad_y, x, (128, 12, 3, 3), 1, 1, 1), RTOL, ATOL)


def test_patches_are_im2col():
    """patches() rows are F.unfold's columns, reordered (tap, channel) -> (channel, tap) by F.unfold."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randint(0, 3, (2, 3, 7, 6), generator=gen, dtype=torch.uint8)
    got = patches.patches(x, [2, 3], [2, 1], [1, 2], [2, 1], [out_size(7, 2, 2, 1, 2), out_size(6, 3, 1, 2, 1)])
    ref = F.unfold(x.float(), (2, 3), dilation=(2, 1), padding=(1, 2), stride=(2, 1))  # [N, C*KH*KW, L]
    ref = ref.view(2, 3, 6, -1).permute(0, 3, 2, 1).reshape(got.shape)
    assert got.dtype == torch.uint8 and torch.equal(got.float(), ref)


def test_plan_lists_the_smaller_side():
    assert cpu.plan(torch.tensor([0, 1, 1, 1], dtype=torch.uint8)) == (True, True, 0.25)
    assert cpu.plan(torch.tensor([0, 0, 0, 1], dtype=torch.uint8)) == (True, False, 0.25)
    assert cpu.plan(torch.tensor([2, 1, 1, 1], dtype=torch.uint8)) == (False, False, 1.0)  # counts: no complement


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), ((1, 2), (2, 1), (2, 1))])
@pytest.mark.parametrize("density", [0.2, 0.9, None])  # None: real values, kept fp32 for torch's backward
def test_op_forward_bits_and_gradients(stride, padding, dilation, density):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 9, 8, generator=gen) if density is None else (torch.rand(3, 4, 9, 8, generator=gen) < density).float()
    w, b = torch.randn(36, 4, 3, 3, generator=gen), torch.randn(36, generator=gen)
    leaves = [t.clone().requires_grad_(True) for t in (x, w, b)]
    refs = [t.clone().requires_grad_(True) for t in (x, w, b)]
    y = spike_conv2d(*leaves, stride, padding, dilation)
    y_ref = F.conv2d(*refs, stride, padding, dilation)
    assert torch.equal(y, y_ref)
    g = torch.randn(y.shape, generator=gen)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    for got, ref, name in zip(leaves, refs, ("x", "weight", "bias")):
        assert_close(got.grad, ref.grad, RTOL, ATOL, what=name)


def test_ops_pass_opcheck():
    x = (torch.rand(2, 3, 6, 5) < 0.3).float().requires_grad_(True)
    w, b = torch.randn(8, 3, 3, 3, requires_grad=True), torch.randn(8, requires_grad=True)
    torch.library.opcheck(torch.ops.spikeattn.spike_conv2d.default, (x, w, b, [1, 1], [1, 1], [1, 1]))
    torch.library.opcheck(torch.ops.spikeattn.spike_conv2d.default, (x, w, None, [2, 1], [0, 1], [1, 2]),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    torch.library.opcheck(torch.ops.spikeattn.spike_conv_grad_weight.default,
                          (torch.randn(2, 8, 6, 5), (x.detach() > 0).to(torch.uint8), [8, 3, 3, 3], [1, 1], [1, 1],
                           [1, 1]), test_utils=("test_schema", "test_faketensor"))


def test_bad_input_raises():
    x, w = torch.zeros(1, 2, 5, 5), torch.zeros(4, 2, 3, 3)
    with pytest.raises(TypeError, match="floating dtype"):
        spike_conv2d(x.to(torch.uint8), w)
    with pytest.raises(TypeError, match="floating dtype"):
        spike_conv2d(x, w.double())
    with pytest.raises(ValueError, match="groups 1"):
        spike_conv2d(x, torch.zeros(4, 1, 3, 3))
    with pytest.raises(ValueError, match="4-D"):
        spike_conv2d(x[0], w)
    with pytest.raises(ValueError, match="padding"):
        spike_conv2d(x, w, padding="same")
    with pytest.raises(ValueError, match="stride"):
        spike_conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="one device"):
        spike_conv2d(x, w.to("meta"))
    g, xs = torch.zeros(1, 4, 3, 3), torch.zeros(1, 2, 5, 5, dtype=torch.uint8)
    with pytest.raises(TypeError, match="x must be uint8"):
        spike_conv_grad_weight(g, xs.float(), (4, 2, 3, 3))
    with pytest.raises(ValueError, match="output gradient"):
        spike_conv_grad_weight(g, xs, (4, 2, 3, 3), padding=1)  # would be 5x5
    with pytest.raises(ValueError, match="weight_size"):
        spike_conv_grad_weight(g, xs, (4, 3, 3, 3))
    with pytest.raises(ValueError, match="same device"):
        spike_conv_grad_weight(g, xs.to("meta"), (4, 2, 3, 3))
    with pytest.raises(ValueError, match="backend"):
        spike_conv_grad_weight(g, xs, (4, 2, 3, 3), backend="gpu")
    with pytest.raises(ValueError, match="fp32"):
        spike_conv_grad_weight(g.double(), xs, (4, 2, 3, 3), backend="cpu")


def test_auto_picks_torch_for_other_dtypes():
    assert sc_ops.resolve_backend("auto", torch.randn(2, dtype=torch.float64)) == "torch"
