"""The fused max-pool against torch's: the same output bits, the same chosen cells (aten's indices) and the
same gradient bits, on many shapes and pool sizes (hypothesis), spike maps of every density and general
values (ties, -0.0, -inf, NaN); 1 byte saved per output and nothing under no_grad; dispatch; bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from spikeattn.ops import spike_pool as sp
from spikeattn.ops.spike_pool import spike_pool

needs_kernel = pytest.mark.skipif(not sp.cpu.is_available(), reason="needs g++ for the CPU kernel")

# (kernel_size, stride, padding): Spikformer's pool first, then overlapping, tiling and wide windows.
POOLS = [(3, 2, 1), (3, 1, 1), (2, 2, 0), (3, 3, 0), (5, 2, 2), (4, 3, 1), (1, 1, 0), (7, 5, 3), (16, 4, 8)]
# Values with ties and torch's special cases: -0.0 vs 0.0 (equal, the first one wins), -inf (never beats
# the -inf start, so the first cell stays chosen), NaN (always taken: the last one wins).
SPECIAL = torch.tensor([0.0, -0.0, 1.0, 2.0, -1.0, float("-inf"), float("nan")])


def spikes(shape, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < density).float()


def specials(shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return SPECIAL[torch.randint(len(SPECIAL), shape, generator=g)]


def pool_and_grad(fn, x: torch.Tensor, grad: torch.Tensor):
    x = x.detach().requires_grad_(True)
    out = fn(x)
    out.backward(grad)
    return out.detach(), x.grad


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality (torch.equal fails on NaN, and cannot tell -0.0 from 0.0)."""
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def check_against_torch(x: torch.Tensor, pool: tuple[int, int, int], seed: int) -> None:
    k, s, p = pool
    expected = F.max_pool2d(x, k, s, p)
    # Gradients with random mantissas: a cell shared by overlapping windows sums them, and only the
    # same order of additions gives the same bits.
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        assert same_bits(spike_pool(x, k, s, p, backend="cpu"), expected)
    out, gx = pool_and_grad(lambda t: spike_pool(t, k, s, p, backend="cpu"), x, grad)
    ref, gx_ref = pool_and_grad(lambda t: F.max_pool2d(t, k, s, p), x, grad)
    assert same_bits(out, ref)
    assert same_bits(gx, gx_ref)


def fits(h: int, w: int, pool) -> bool:
    k, _, p = pool
    return min(h, w) + 2 * p >= k


@needs_kernel
@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(0, 3), c=st.integers(1, 4), h=st.integers(1, 40), w=st.integers(1, 40),
       pool=st.sampled_from(POOLS), density=st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]), seed=st.integers(0, 9999))
def test_spike_maps_match_torch(n, c, h, w, pool, density, seed):
    if not fits(h, w, pool):
        h, w = h + pool[0], w + pool[0]  # a window must fit: test a larger map instead of skipping
    check_against_torch(spikes((n, c, h, w), density, seed), pool, seed)


@needs_kernel
@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 24), w=st.integers(1, 24),
       pool=st.sampled_from(POOLS), seed=st.integers(0, 9999))
def test_any_values_match_torch(n, c, h, w, pool, seed):
    if not fits(h, w, pool):
        h, w = h + pool[0], w + pool[0]
    check_against_torch(specials((n, c, h, w), seed), pool, seed)


@needs_kernel
@pytest.mark.parametrize("pool", POOLS, ids=[f"k{k}s{s}p{p}" for k, s, p in POOLS])
def test_chosen_cells_are_torchs_indices(pool):
    k, s, p = pool
    x = torch.cat([spikes((1, 3, 19, 23), 0.5, 1), torch.zeros(1, 1, 19, 23), specials((1, 2, 19, 23), 2)], 1)
    _, where = torch.ops.spikeattn.spike_pool_where(x, k, s, p)
    _, indices = F.max_pool2d(x, k, s, p, return_indices=True)
    oh = torch.arange(where.shape[2])[:, None]
    ow = torch.arange(where.shape[3])
    o = where.long()
    assert torch.equal((oh * s - p + o // k) * x.shape[3] + ow * s - p + o % k, indices)


@needs_kernel
def test_hand_computed_ties_and_overlaps():
    # 1 x 1 x 3 x 3 map, MaxPool(3, 2, 1) -> 2 x 2 outputs, windows overlapping on row and column 1.
    x = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]], requires_grad=True)
    out = spike_pool(x, backend="cpu")
    assert out.tolist() == [[[[1.0, 1.0], [1.0, 1.0]]]]
    out.backward(torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]]))
    # Each window's first 1 in row-major order: x[0, 0] for window (0, 0), x[0, 1] for (0, 1) (whose
    # columns start at 1), x[1, 0] for (1, 0), x[1, 1] for (1, 1).
    assert x.grad.tolist() == [[[[1.0, 2.0, 0.0], [4.0, 8.0, 0.0], [0.0, 0.0, 0.0]]]]
    grad = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]])
    one = torch.zeros(1, 1, 3, 3)
    one[0, 0, 1, 1] = 1.0  # the only 1 lies in all four windows: their gradients add up there
    assert pool_and_grad(lambda t: spike_pool(t, backend="cpu"), one, grad)[1].tolist() == [
        [[[0.0, 0.0, 0.0], [0.0, 15.0, 0.0], [0.0, 0.0, 0.0]]]]
    # All zeros: each window keeps its first in-range cell, as torch does.
    assert pool_and_grad(lambda t: spike_pool(t, backend="cpu"), torch.zeros(1, 1, 3, 3), grad)[1].tolist() == [
        [[[1.0, 2.0, 0.0], [4.0, 8.0, 0.0], [0.0, 0.0, 0.0]]]]


@needs_kernel
def test_saves_one_byte_per_output_and_nothing_under_no_grad(monkeypatch):
    x = spikes((2, 3, 16, 16), 0.3, 0).requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = spike_pool(x)
    assert [(t.dtype, tuple(t.shape)) for t in saved] == [(torch.uint8, (2, 3, 8, 8))]
    assert out.requires_grad
    calls = []
    for name in ("spike_pool", "spike_pool_where"):
        real = getattr(torch.ops.spikeattn, name)
        monkeypatch.setattr(torch.ops.spikeattn, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))
    with torch.no_grad():
        spike_pool(x)
    spike_pool(x.detach())
    assert calls == ["spike_pool", "spike_pool"]  # the values-only op: no cells computed or kept


@needs_kernel
def test_double_backward_matches_torch():
    # The backward is linear in the output gradient; its gradient (e.g. a gradient penalty) reads each
    # output's chosen cell, as torch's does.
    x = specials((2, 3, 9, 11), 5)
    g = torch.randn(2, 3, 5, 6)
    w = torch.randn(2, 3, 9, 11)
    results = []
    for fn in (lambda t: spike_pool(t, backend="cpu"), lambda t: F.max_pool2d(t, 3, 2, 1)):
        xg, gg = x.clone().requires_grad_(True), g.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(fn(xg), xg, gg, create_graph=True)
        results.append(torch.autograd.grad((gx * w).sum(), gg)[0])
    assert same_bits(*results)


@needs_kernel
def test_same_bits_on_any_thread_count():
    x = spikes((2, 33, 31, 29), 0.2, 3)
    grad = torch.randn(2, 33, 16, 15)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(pool_and_grad(lambda t: spike_pool(t, backend="cpu"), x, grad))
    finally:
        torch.set_num_threads(threads)
    for out, gx in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(gx, results[0][1])


@needs_kernel
def test_opcheck():
    x = spikes((2, 3, 9, 7), 0.4, 0)
    torch.library.opcheck(torch.ops.spikeattn.spike_pool.default, (x, 3, 2, 1))
    torch.library.opcheck(torch.ops.spikeattn.spike_pool_where.default, (x.requires_grad_(True), 3, 2, 1))
    _, where = torch.ops.spikeattn.spike_pool_where(x.detach(), 3, 2, 1)
    torch.library.opcheck(torch.ops.spikeattn.spike_pool_backward.default, (torch.randn(2, 3, 5, 4), where, 9, 7, 3, 2, 1))


@needs_kernel
def test_auto_picks_the_kernel_for_fp32_cpu_only(monkeypatch):
    seen = []
    real = sp.BACKENDS["cpu"]
    monkeypatch.setitem(sp.BACKENDS, "cpu", lambda *a: seen.append(1) or real(*a))
    spike_pool(torch.zeros(1, 1, 4, 4))
    assert seen == [1]
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        assert sp.resolve_backend("auto", torch.zeros(1, 1, 4, 4, dtype=dtype)) == "torch"
        x = spikes((1, 2, 7, 7), 0.5, 0).to(dtype)
        assert torch.equal(spike_pool(x), F.max_pool2d(x, 3, 2, 1))  # the torch backend runs
    assert sp.resolve_backend("auto", torch.zeros(1, 1, 4, 4, device="meta")) == "torch"


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        ([[0.0]], {}, TypeError, "x must be a torch.Tensor"),
        (torch.zeros(2, 8, 8), {}, ValueError, r"x must be a floating-point \[N, C, H, W\]"),
        (torch.zeros(1, 2, 2, 8, 8), {}, ValueError, r"x must be a floating-point \[N, C, H, W\]"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.int64), {}, ValueError, "x must be a floating-point"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.float64), {"backend": "cpu"}, ValueError, "backend='cpu' needs fp32 x"),
        (torch.zeros(1, 1, 8, 8, device="meta"), {"backend": "cpu"}, ValueError, "runs on cpu tensors, got x on meta"),
        (torch.zeros(1, 1, 8, 8), {"backend": "cupy"}, ValueError, "backend='cupy' has no max-pool kernel"),
        (torch.zeros(1, 1, 8, 8), {"backend": "gpu"}, ValueError, "backend must be one of"),
        (torch.zeros(1, 1, 8, 8), {"kernel_size": 0}, ValueError, "kernel_size must be an int >= 1"),
        (torch.zeros(1, 1, 8, 8), {"kernel_size": 2.0}, ValueError, "kernel_size must be an int >= 1"),
        (torch.zeros(1, 1, 8, 8), {"stride": 0}, ValueError, "stride must be an int >= 1"),
        (torch.zeros(1, 1, 8, 8), {"padding": -1}, ValueError, "padding must be an int >= 0"),
        (torch.zeros(1, 1, 40, 40), {"kernel_size": 17, "padding": 0}, ValueError, "kernel_size <= 16"),
        (torch.zeros(1, 1, 8, 8), {"kernel_size": 3, "padding": 2}, ValueError, "padding <= kernel_size // 2"),
        (torch.zeros(1, 1, 2, 8), {"kernel_size": 5, "padding": 1}, ValueError, "does not fit x of shape"),
    ],
)
def test_bad_input(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        spike_pool(x, **kwargs)


@needs_kernel
def test_registered_kernel_rejects_other_dtypes():
    with pytest.raises(TypeError, match="runs on float32"):
        torch.ops.spikeattn.spike_pool(torch.zeros(1, 1, 4, 4, dtype=torch.float64), 3, 2, 1)
