"""The fused SSA core (ssa_tokens, backend cpu) against the torch reference: bit-identical outputs
(both associations of the torch backend too), gradients, bit masks past 64 channels, thread count,
the same path under a dispatch mode, bad input; and the SSA layer with the kernel vs without."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from spikeattn.layers import SpikingSelfAttention
from spikeattn.ops import ssa as ssa_ops
from spikeattn.ops.ssa import ssa_tokens
from spikeattn.ops.ssa.reference import naive_ssa
from tests.conftest import assert_close, grad_tolerance

needs_cpu_kernel = pytest.mark.skipif(not ssa_ops.cpu.is_available(), reason="needs g++ for the CPU kernel")

# (T, B, N, 3C), heads, scale: N past one 64-bit word, d = 70 (two mask words), d = 1, odd scale
CASES = [((2, 3, 16, 48), 2, 0.125), ((1, 2, 70, 36), 3, 0.1), ((2, 1, 5, 420), 2, 0.37), ((1, 1, 9, 6), 2, 1.0)]


def spikes(shape, rate=0.3, seed=0):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < rate).float()


def permuted(qkv, heads):  # the layer's old route: (3, T, B, H, N, d)
    t, b, n, c3 = qkv.shape
    return qkv.view(t, b, n, 3, heads, c3 // 3 // heads).permute(3, 0, 1, 4, 2, 5)


@needs_cpu_kernel
@pytest.mark.parametrize("shape,heads,scale", CASES, ids=str)
def test_outputs_bit_identical(shape, heads, scale):
    qkv = spikes(shape)
    got = ssa_tokens(qkv, heads, scale, backend="cpu")
    assert got.dtype == torch.float32 and got.shape == (*shape[:-1], shape[-1] // 3)
    assert got.abs().sum() > 0
    assert torch.equal(got, naive_ssa(qkv, heads, scale))
    t, b, n, c3 = shape
    for order in ("qk_first", "kv_first"):
        assert torch.equal(got, ssa_tokens(qkv, heads, scale, order=order, backend="torch")), order


@needs_cpu_kernel
@pytest.mark.parametrize("shape,heads,scale", CASES, ids=str)
def test_gradients_match_reference(shape, heads, scale):
    qkv = spikes(shape, seed=1).requires_grad_(True)
    ref_in = qkv.detach().double().requires_grad_(True)
    g = torch.randn(*shape[:-1], shape[-1] // 3)
    (got,) = torch.autograd.grad((ssa_tokens(qkv, heads, scale, backend="cpu") * g).sum(), qkv)
    t, b, n, c3 = shape
    q, k, v = permuted(ref_in, heads).unbind(0)  # the oracle in fp64 (naive_ssa computes in fp32)
    out = (q @ (k.transpose(-2, -1) @ v)) * scale
    (ref,) = torch.autograd.grad((out.transpose(2, 3).reshape(t, b, n, c3 // 3) * g.double()).sum(), ref_in)
    assert_close(got, ref, *grad_tolerance(torch.float32))


@needs_cpu_kernel
def test_same_bits_for_any_thread_count():
    qkv = spikes((2, 4, 33, 96)).requires_grad_(True)
    g = torch.randn(2, 4, 33, 32)
    old, results = torch.get_num_threads(), []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = ssa_tokens(qkv, 4, 0.125, backend="cpu")
            results.append((out, *torch.autograd.grad((out * g).sum(), qkv)))
    finally:
        torch.set_num_threads(old)
    assert all(torch.equal(a, b) for a, b in zip(*results))


@needs_cpu_kernel
def test_registered_ops_pass_opcheck():
    qkv = spikes((1, 2, 7, 24))
    torch.library.opcheck(torch.ops.spikeattn.ssa_forward.default, (qkv, 2, 0.25),
                          test_utils=("test_schema", "test_faketensor"))
    _, bits = torch.ops.spikeattn.ssa_forward(qkv, 2, 0.25)
    assert bits.dtype == torch.int64 and bits.shape == (1, 2, 7, 3, 2, 1)
    torch.library.opcheck(torch.ops.spikeattn.ssa_backward.default, (torch.randn(1, 2, 7, 8), bits, 2, 0.25),
                          test_utils=("test_schema", "test_faketensor"))


def test_auto_picks_the_same_path_under_a_dispatch_mode():
    qkv = spikes((1, 1, 4, 12))
    assert ssa_ops.resolve_backend("auto", qkv.double()) == "torch"
    plain = ssa_ops.resolve_backend("auto", qkv)
    assert plain == ("cpu" if ssa_ops.cpu.is_available() else "torch")
    seen = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.name())
            return func(*args, **(kwargs or {}))

    with Watch():  # an op counter or tracer sees the op that trains, not another path
        assert ssa_ops.resolve_backend("auto", qkv) == plain
        ssa_tokens(qkv, 2, 0.5)
    assert seen == [{"cpu": "spikeattn::ssa_forward", "torch": "spikeattn::ssa_matmul"}[plain]]


def test_matmul_op_passes_opcheck():
    qkv = spikes((1, 2, 7, 24))
    for order in ("qk_first", "kv_first"):
        torch.library.opcheck(torch.ops.spikeattn.ssa_matmul.default, (qkv.requires_grad_(True), 2, 0.25, order))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="3C"):
        ssa_tokens(torch.zeros(2, 4, 10), 1, 0.1)
    with pytest.raises(ValueError, match="heads"):
        ssa_tokens(torch.zeros(2, 4, 12), 3, 0.1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ssa_tokens([[0.0] * 12], 1, 0.1)
    with pytest.raises(ValueError, match="fp32"):
        ssa_tokens(torch.zeros(2, 4, 12, dtype=torch.float64), 1, 0.1, backend="cpu")


@needs_cpu_kernel
def test_layer_same_outputs_and_close_grads_with_and_without_kernel(monkeypatch):
    torch.manual_seed(0)
    layer = SpikingSelfAttention(48, heads=4)
    for m in layer.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            torch.nn.init.constant_(m.bias, 1.0)  # the attention LIF fires (not an all-zero test)
    x = spikes((3, 2, 10, 48), rate=0.25)
    g = torch.randn(3, 2, 10, 48)

    def run():
        layer.zero_grad()
        out = layer(x)
        (out * g).sum().backward()
        return out, [p.grad.clone() for p in layer.parameters()]

    fused = run()
    monkeypatch.setattr(ssa_ops, "resolve_backend", lambda backend, qkv: "torch")
    plain = run()
    assert 0 < fused[0].mean() < 1 and torch.equal(fused[0], plain[0])
    for a, b in zip(fused[1], plain[1]):
        assert_close(a, b, 1e-5, 1e-6)
