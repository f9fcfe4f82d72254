"""spikeattn.ops.linear: oneDNN's fp32 GEMM against F.linear (shapes, strides, bias, both backward
GEMMs' layouts), when ``auto`` picks which, bad input, and spike_linear's gradients through it."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from spikeattn.ops.spike_linear import spike_linear
from spikeattn.ops.spike_linear.reference import naive_spike_linear
from spikeattn.ops import linear as lin
from spikeattn.ops.linear import linear, resolve_backend
from tests.conftest import assert_close

needs_onednn = pytest.mark.skipif(not lin.onednn.is_available(), reason="this torch has no oneDNN linear op")


def exact(x, w, b=None):
    y = x.double() @ w.double().T
    return y if b is None else y + b.double()


@needs_onednn
@settings(max_examples=40, deadline=None)
@given(lead=st.lists(st.integers(1, 9), min_size=1, max_size=3), i=st.integers(1, 200), o=st.integers(1, 150),
       bias=st.booleans(), spikes=st.booleans(), seed=st.integers(0, 2**16))
def test_onednn_matches_exact(lead, i, o, bias, spikes, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(*lead, i, generator=g) < 0.2).float() if spikes else torch.randn(*lead, i, generator=g)
    w, b = torch.randn(o, i, generator=g), (torch.randn(o, generator=g) if bias else None)
    got = linear(x, w, b, backend="onednn")
    assert got.shape == (*lead, o) and got.dtype == torch.float32
    # fp32 sums of i products: a few ulps of the largest partial sum
    assert_close(got, exact(x, w, b), 1e-5, 1e-5 * i ** 0.5, what=f"lead {lead} i {i} o {o}")
    if spikes:  # 0/1 inputs times the same weights: exact to fp32 rounding against MKL too
        assert_close(got, F.linear(x, w, b), 1e-5, 1e-5 * i ** 0.5, what="vs F.linear")


@needs_onednn
@pytest.mark.parametrize("m,i,o", [(2048, 384, 1152), (517, 130, 67)])
def test_transposed_operands_as_in_backward(m, i, o):
    """grad_x = g @ W (W^T read in place) and grad_W = g^T @ x (both transposed), as _SpikeLinear calls them."""
    g, w, x = torch.randn(m, o), torch.randn(o, i), torch.randn(m, i)
    assert_close(linear(g, w.T, backend="onednn"), g.double() @ w.double(), 1e-5, 1e-4)
    assert_close(linear(g.T, x.T, backend="onednn"), g.double().T @ x.double(), 1e-5, 1e-4)


def test_auto_picks_by_device_dtype_size_and_autograd():
    big, w = torch.randn(2048, 384), torch.randn(384, 384)
    fast = "onednn" if lin.onednn.is_available() and lin.onednn.pays_off() else "torch"
    assert resolve_backend("auto", big, w) == fast
    assert resolve_backend("auto", torch.randn(4, 8), torch.randn(8, 8)) == "torch"          # tiny GEMM
    assert resolve_backend("auto", big.double(), w.double()) == "torch"                      # not fp32
    assert resolve_backend("auto", big, w.requires_grad_()) == "torch"                      # autograd records
    with torch.no_grad():
        assert resolve_backend("auto", big, w) == fast


def test_bad_input_named():
    with pytest.raises(ValueError, match="do not match"):
        linear(torch.randn(3, 5), torch.randn(4, 6))
    with pytest.raises(ValueError, match="backend must be one of"):
        linear(torch.randn(3, 5), torch.randn(4, 5), backend="mkl")
    with pytest.raises(ValueError, match="fp32 CPU"):
        linear(torch.randn(3, 5).double(), torch.randn(4, 5).double(), backend="onednn")


@needs_onednn
def test_onednn_refuses_tracked_inputs():
    with pytest.raises(ValueError, match="no autograd"):
        linear(torch.randn(3, 5), torch.randn(4, 5, requires_grad=True), backend="onednn")


@pytest.mark.parametrize("spiking_input", [True, False])
def test_spike_linear_gradients_match_autograd(spiking_input):
    """Forward, grad_x, grad_W (dense branch for float inputs) and grad_b through oneDNN against fp64 autograd."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 8, 64, 96, generator=g) < 0.2).float() if spiking_input else torch.randn(4, 8, 64, 96, generator=g)
    w, b = torch.randn(192, 96, generator=g), torch.randn(192, generator=g)
    gy = torch.randn(4, 8, 64, 192, generator=g)
    got = [t.clone().requires_grad_() for t in (x, w, b)]
    ref = [t.double().requires_grad_() for t in (x, w, b)]
    (spike_linear(*got) * gy).sum().backward()
    (naive_spike_linear(*ref) * gy.double()).sum().backward()  # the oracle, in fp64
    for a, e, name in zip(got, ref, ("x", "W", "b")):
        assert_close(a.grad, e.grad, 1e-5, 1e-3, what=f"grad {name}")


@needs_onednn
def test_auto_takes_the_same_path_under_a_dispatch_mode(onednn_preferred):
    """No op changes path because someone watches: FlopCounterMode sees the oneDNN op that runs untraced."""
    from torch.utils.flop_counter import FlopCounterMode

    x, w = torch.randn(2048, 384), torch.randn(384, 384)
    with torch.no_grad():
        plain = resolve_backend("auto", x, w)
        assert plain == "onednn"
        with FlopCounterMode(display=False):
            assert resolve_backend("auto", x, w) == plain


def test_opcount_counts_spiking_linears(monkeypatch, onednn_preferred):
    """The demo model's LinearBN layers are counted on the oneDNN path exactly as on the aten one."""
    import spikeattn as sa

    model = sa.models.spikformer("spikformer-mini-fmnist").eval()
    x = torch.randn(4, 1, 28, 28)
    fast = sa.opcount.count(model, x)
    assert "blocks.0.attn.qkv" in fast.table() and "blocks.0.mlp.fc1" in fast.table()
    monkeypatch.setattr(lin, "MIN_ONEDNN_MACS", 2**62)  # every Linear on F.linear (aten.mm)
    assert fast.table() == sa.opcount.count(model, x).table()


@needs_onednn
def test_availability_probe_is_not_counted():
    """The first oneDNN call of a process may happen under opcount: the probe's tiny matmul stays out of the count."""
    import spikeattn as sa

    model = sa.models.spikformer("spikformer-mini-fmnist", dim=128, heads=4).eval()
    x = torch.randn(8, 1, 28, 28)
    lin.onednn.is_available.cache_clear()  # as in a fresh process
    first = sa.opcount.count(model, x)
    assert lin.onednn.is_available.cache_info().misses == 1  # the probe did run inside the count
    assert first.table() == sa.opcount.count(model, x).table()


def test_auto_takes_onednn_on_amd_with_avx512_only(monkeypatch):
    """The CPU rule (bench_linear.py: oneDNN 2.2-2.4x MKL on an AMD EPYC with AVX-512, 0.73-0.97x on one with
    AVX2 only, 0.82-0.97x on an Intel Xeon)."""
    for vendor, avx512, expected in (("AuthenticAMD", True, True), ("AuthenticAMD", False, False),
                                     ("GenuineIntel", True, False), ("", False, False)):
        monkeypatch.setattr(lin.onednn, "cpu_vendor", lambda: vendor)
        monkeypatch.setattr(lin.onednn, "has_avx512", lambda: avx512)
        assert lin.onednn.pays_off() is expected
        big, w = torch.randn(2048, 384), torch.randn(384, 384)
        with torch.no_grad():
            assert resolve_backend("auto", big, w) == ("onednn" if expected and lin.onednn.is_available() else "torch")


def test_cpu_vendor_reads_this_machine():
    from spikeattn.ops._native import cpu_vendor

    text = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    assert cpu_vendor() == ("" if "vendor_id" not in text else text.split("vendor_id")[1].split(":")[1].split()[0])
