"""spike_grad_weight: the CPU gather-sum kernel against the dense reference (sparse lists, the
complement of mostly-one spikes, counts up to 255, the dense fallback, tails of every block),
determinism across threads, bad input, and spike_linear's weight gradient through it."""

from __future__ import annotations

import pytest
import torch

from spikeattn.ops.spike_linear import spike_linear
from spikeattn.ops import spike_linear as sl_ops
from spikeattn.ops.spike_linear import spike_grad_weight
from spikeattn.ops.spike_linear.reference import naive_spike_grad_weight
from tests.conftest import assert_close, at_threads

needs_cpu_kernel = pytest.mark.skipif(not sl_ops.cpu.is_available(), reason="needs g++ for the CPU kernel")


def exact(grad_y, x):
    return grad_y.double().T @ x.double()  # fp64: the fp32 sums are compared against this


def spikes(m, i, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(m, i, generator=g) < density).to(torch.uint8)


@needs_cpu_kernel
@pytest.mark.parametrize("density", [0.0, 0.05, 0.2, 0.5, 0.9, 1.0])  # 0.5: the dense fallback
@pytest.mark.parametrize("shape", [(1, 1, 1), (300, 100, 37), (513, 128, 20), (64, 200, 3)], ids=str)
def test_cpu_matches_reference(shape, density):
    m, o, i = shape  # M=300/513: a partial token chunk; O=100/200: a partial block of 64 outputs
    grad_y = torch.randn(m, o)
    x = spikes(m, i, density)
    got = spike_grad_weight(grad_y, x, backend="cpu")
    assert got.dtype == torch.float32 and got.shape == (o, i)
    assert_close(got, exact(grad_y, x), 1e-6, 1e-6, what=f"density {density}")
    assert_close(got, naive_spike_grad_weight(grad_y, x), 1e-6, 1e-6, what="vs torch")


@needs_cpu_kernel
def test_counts_up_to_255():
    grad_y = torch.randn(400, 70)
    x = torch.randint(0, 256, (400, 9), dtype=torch.uint8) * (torch.rand(400, 9) < 0.1)
    assert x.max() > 1
    assert_close(spike_grad_weight(grad_y, x, backend="cpu"), exact(grad_y, x), 1e-6, 1e-6)


@needs_cpu_kernel
def test_hand_computed_and_complement():
    # x mostly ones (complement lists); column 0 all ones, column 1 zero at token 1 only.
    grad_y = torch.tensor([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])
    x = torch.tensor([[1, 1], [1, 0], [1, 1]], dtype=torch.uint8)
    expected = torch.tensor([[7.0, 5.0], [70.0, 50.0]])
    assert torch.equal(spike_grad_weight(grad_y, x, backend="cpu"), expected)




@needs_cpu_kernel
@pytest.mark.parametrize("outputs", [300, 100])
@pytest.mark.parametrize("kind", ["sparse", "complement", "counts"])
def test_same_bits_for_any_thread_count(kind, outputs):
    # 1500 x 200 x uint8 (300K entries, 4 groups of 64 columns: the lists are split across threads) and
    # O=300 (5 blocks, the last narrow) or O=100 (2 blocks): at 2 threads the work units are blocks times
    # ranges of input columns (2 and 3 ranges), at 1 thread whole blocks.
    g = torch.Generator().manual_seed(3)
    grad_y = torch.randn(1500, outputs, generator=g)
    x = spikes(1500, 200, {"sparse": 0.2, "complement": 0.9, "counts": 0.1}[kind])
    if kind == "counts":
        x = x * torch.randint(1, 256, x.shape, generator=g, dtype=torch.uint8)
    one, two = (at_threads(n, lambda: spike_grad_weight(grad_y, x, backend="cpu")) for n in (1, 2))
    assert torch.equal(one, two)
    assert_close(two, exact(grad_y, x), 1e-5, 1e-5)


@needs_cpu_kernel
@pytest.mark.parametrize("bad_at", [None, 5, 400_000])  # past 2^18: the bad value is in the second thread's range
def test_to_uint8_exact_any_thread_count(bad_at):
    x = torch.randint(0, 256, (600_000,), generator=torch.Generator().manual_seed(4)).float()
    if bad_at is not None:
        x[bad_at] = 0.5
    for n in (1, 2):
        small = at_threads(n, lambda: sl_ops.cpu.to_uint8_exact(x))
        if bad_at is None:
            assert small is not None and torch.equal(small.float(), x)
        else:
            assert small is None


@needs_cpu_kernel
def test_empty_tokens_give_zeros():
    got = spike_grad_weight(torch.randn(0, 5), torch.zeros(0, 3, dtype=torch.uint8), backend="cpu")
    assert torch.equal(got, torch.zeros(5, 3))


@needs_cpu_kernel
def test_registered_op_passes_opcheck():
    torch.library.opcheck(torch.ops.spikeattn.spike_grad_weight.default,
                          (torch.randn(40, 70), spikes(40, 6, 0.2)), test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("is_spikes", [True, False])
def test_spike_linear_op_passes_opcheck(is_spikes):
    """Schema, fake kernel and autograd registration of ``spikeattn::spike_linear``."""
    x = (torch.rand(3, 5, 16) < 0.3).float().requires_grad_(True)
    w, b = torch.randn(8, 16, requires_grad=True), torch.randn(8, requires_grad=True)
    for bias in (b, None):
        torch.library.opcheck(torch.ops.spikeattn.spike_linear.default, (x, w, bias, is_spikes))


def test_spike_linear_compiles_into_one_graph():
    x, w = (torch.rand(2, 4, 16) < 0.3).float(), torch.randn(8, 16, requires_grad=True)
    compiled = torch.compile(lambda x, w: spike_linear(x, w, None, True), fullgraph=True, backend="aot_eager")
    assert_close(compiled(x, w), x @ w.T.detach(), 1e-6)


def test_auto_picks_torch_for_other_dtypes():
    assert sl_ops.resolve_backend("auto", torch.randn(2, 2, dtype=torch.float64)) == "torch"
    grad_y, x = torch.randn(50, 8, dtype=torch.float64), spikes(50, 4, 0.3)
    assert_close(spike_grad_weight(grad_y, x), exact(grad_y, x), 1e-12)


def test_bad_input_raises():
    g = torch.randn(4, 3)
    with pytest.raises(TypeError, match="x must be uint8"):
        spike_grad_weight(g, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="rows"):
        spike_grad_weight(g, torch.zeros(5, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="2-D"):
        spike_grad_weight(g.view(2, 2, 3), torch.zeros(4, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="backend"):
        spike_grad_weight(g, torch.zeros(4, 2, dtype=torch.uint8), backend="gpu")
    with pytest.raises(ValueError, match="fp32"):
        spike_grad_weight(g.double(), torch.zeros(4, 2, dtype=torch.uint8), backend="cpu")


@pytest.mark.parametrize("is_spikes", [True, False])
@pytest.mark.parametrize("density", [0.2, 0.9])
def test_spike_linear_weight_grad(is_spikes, density):
    x = spikes(2 * 3 * 5, 16, density).float().view(2, 3, 5, 16)
    w = torch.randn(40, 16, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_(True)
    gy = torch.randn(2, 3, 5, 40)
    (spike_linear(x, w, None, is_spikes=is_spikes) * gy).sum().backward()
    (torch.nn.functional.linear(x, w_ref) * gy).sum().backward()
    assert_close(w.grad, w_ref.grad, 1e-6, 1e-6)


@needs_cpu_kernel
@pytest.mark.parametrize("value,ok", [(3.0, True), (255.0, True), (0.5, False), (-1.0, False), (256.0, False),
                                      (float("nan"), False), (float("inf"), False), (-0.0, True)])
def test_to_uint8_exact(value, ok):
    x = torch.randint(0, 256, (5, 300)).float()
    x[3, 17] = value
    small = sl_ops.cpu.to_uint8_exact(x)
    if ok:
        assert small is not None and small.dtype == torch.uint8 and torch.equal(small.float(), x)
    else:
        assert small is None


@pytest.mark.parametrize("onednn,avx512,in_features,expected", [
    (False, True, 1536, 0.15), (False, True, 384, 0.3), (True, True, 1536, 0.3), (False, False, 1536, 0.3)])
def test_dense_switch_per_cpu(monkeypatch, onednn, avx512, in_features, expected):
    """Against MKL with AVX-512 (Intel) wide inputs go dense above 15% listed entries; against oneDNN, MKL
    on AVX2, or narrow, above 30%."""
    monkeypatch.setattr(sl_ops.cpu.onednn, "pays_off", lambda: onednn)
    monkeypatch.setattr(sl_ops.cpu, "has_avx512", lambda: avx512)
    seen = []
    monkeypatch.setattr(sl_ops.cpu, "_entry", lambda: lambda *args: seen.append(args[7]) or 0)  # 0: "go dense"
    grad_y, x = torch.randn(64, 8), spikes(64, in_features, 0.25)
    got = spike_grad_weight(grad_y, x, backend="cpu")
    assert seen == [expected] and sl_ops.cpu.max_fraction(in_features) == expected
    assert_close(got, exact(grad_y, x), 1e-5, 1e-5)  # the dense GEMM's result
