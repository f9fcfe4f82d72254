"""SSA and SDSA: shapes, dtypes, the exact association choice, gradients to every parameter, errors."""

from __future__ import annotations

import pytest
import torch

import spikeattn
from spikeattn.layers import NeuronSpec, SpikeDrivenSelfAttention, SpikingSelfAttention, spike_attention, ssa_order
from spikeattn.ops.ssa import ssa_tokens
from tests.conftest import assert_close
from tests.layers.helpers import active_batch, assert_all_params_have_grad

BACKENDS = ["cpu", "torch"]


def stacked_ssa(qkv, scale, order):
    """``ssa_tokens`` (backend torch, the ``spikeattn::ssa_matmul`` op) on Q, K, V stacked as ``[3, ..., N, d]``."""
    tokens = qkv.movedim(0, -2)                                   # (..., N, 3, d)
    return ssa_tokens(tokens.reshape(*tokens.shape[:-2], -1), 1, scale, order=order, backend="torch")


def spikes(*shape, rate=0.3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < rate).to(dtype)


@pytest.mark.parametrize("n,d,expected", [(4, 8, "qk_first"), (16, 8, "kv_first"), (8, 8, "kv_first")])
def test_order_is_the_cheaper_one(n, d, expected):
    assert ssa_order(n, d) == expected


@pytest.mark.parametrize("shape", [(2, 2, 3, 16, 8), (2, 1, 2, 5, 13), (1, 2, 4, 16, 16)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_both_associations_equal_exactly(shape, dtype):
    # Dense spikes make big counts (up to N*d): every partial sum must still be an exact integer.
    qkv = spikes(3, *shape, rate=0.9, dtype=dtype).requires_grad_()
    outs, grads = [], []
    for order in ("qk_first", "kv_first"):
        out = stacked_ssa(qkv, 0.125, order)
        (g,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum(), qkv)
        outs.append(out)
        grads.append(g)
    assert torch.equal(outs[0], outs[1])
    naive = (qkv[0] @ qkv[1].transpose(-2, -1) @ qkv[2]).detach() * 0.125
    assert torch.equal(outs[0], naive.to(outs[0].dtype))
    assert outs[0].max() > 1  # the counts are not trivially 0/1
    assert_close(grads[0], grads[1], rtol=1e-6 if dtype == torch.float32 else 1e-12, what="grad qkv")


def test_attention_matches_autograd_of_naive_product():
    qkv = spikes(3, 2, 2, 2, 6, 4, rate=0.5, dtype=torch.float64).requires_grad_()
    g = torch.randn(2, 2, 2, 6, 4, dtype=torch.float64)
    for order in ("qk_first", "kv_first"):
        (ours,) = torch.autograd.grad((stacked_ssa(qkv, 0.25, order) * g).sum(), qkv)
        (ref,) = torch.autograd.grad(((qkv[0] @ qkv[1].transpose(-2, -1) @ qkv[2]) * 0.25 * g).sum(), qkv)
        assert_close(ours, ref, rtol=1e-12, what=order)


@pytest.mark.parametrize("order", ["qk_first", "kv_first"])
@pytest.mark.parametrize("N,d", [(10, 8), (300, 4), (3, 300)], ids=str)
def test_kept_middle_product_gives_the_naive_gradient(order, N, d):
    """Backward reuses the middle product (Q K^T: counts <= d, K^T V: <= N) kept as uint8 when the
    counts fit in it, and recomputes it when they may not (300 > 255): the gradient is the naive one."""
    qkv = spikes(3, 2, 2, N, d, rate=0.95, seed=1, dtype=torch.float64).requires_grad_()
    g = torch.randn(2, 2, N, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = stacked_ssa(qkv, 0.125, order)
    (ours,) = torch.autograd.grad((out * g).sum(), qkv)
    (ref,) = torch.autograd.grad(((qkv[0] @ qkv[1].transpose(-2, -1) @ qkv[2]) * 0.125 * g).sum(), qkv)
    if max(N, d) > 255:  # the big cases do make middle counts that uint8 cannot hold
        middle = qkv[0] @ qkv[1].transpose(-2, -1) if order == "qk_first" else qkv[1].transpose(-2, -1) @ qkv[2]
        assert middle.max() > 255 or (order == "qk_first") == (N > d)
    assert_close(ours, ref, rtol=1e-12, what=order)


@pytest.mark.parametrize("n", [4, 16], ids=lambda n: f"N{n}")  # head dim 8: N=4 -> qk_first, N=16 -> kv_first
@pytest.mark.parametrize("backend", BACKENDS)
def test_ssa_orders_give_identical_layer_outputs(n, backend):
    outs, grads = [], []
    for order in ("qk_first", "kv_first"):
        torch.manual_seed(0)
        # scale 1 (exact, like 0.125) so that even N=4 tokens make the attention LIF fire
        m = SpikingSelfAttention(32, 4, scale=1.0, neuron=NeuronSpec(backend=backend), order=order)
        xr = active_batch(m, (2, 2, n, 32))
        out = m(xr)
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        outs.append(out)
        grads.append([xr.grad] + [p.grad for p in m.parameters()])
    assert torch.equal(outs[0], outs[1])
    assert 0 < outs[0].mean() < 1  # not trivially silent or saturated
    for a, b in zip(*grads):
        assert_close(a, b, rtol=1e-4, what="grad")


@pytest.mark.parametrize("cls", [SpikingSelfAttention, SpikeDrivenSelfAttention])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_dtypes_and_binary_output(cls, dtype, backend):
    m = cls(32, 4, neuron=NeuronSpec(backend=backend)).to(dtype)
    y = m(spikes(2, 3, 16, 32, dtype=dtype))
    assert y.shape == (2, 3, 16, 32) and y.dtype == dtype
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_orders_stay_exact_under_bf16_autocast():
    qkv = spikes(3, 1, 2, 2, 64, 32, rate=0.9)  # counts up to 64*32 = 2048: not representable in bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = (stacked_ssa(qkv, 0.125, order) for order in ("qk_first", "kv_first"))
    assert a.dtype == torch.float32 and torch.equal(a, b)
    assert torch.equal(a, (qkv[0] @ qkv[1].transpose(-2, -1) @ qkv[2]) * 0.125)


@pytest.mark.parametrize("cls", [SpikingSelfAttention, SpikeDrivenSelfAttention])
def test_bf16_forward(cls):
    m = cls(32, 4).to(torch.bfloat16)
    y = m(spikes(2, 2, 8, 32, dtype=torch.bfloat16))
    assert y.shape == (2, 2, 8, 32) and y.dtype == torch.bfloat16


@pytest.mark.parametrize("cls", [SpikingSelfAttention, SpikeDrivenSelfAttention])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_reaches_every_parameter(cls, backend):
    m = cls(32, 4, neuron=NeuronSpec(backend=backend))
    x = active_batch(m, (2, 2, 16, 32))
    out = m(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(3))).sum().backward()
    assert_all_params_have_grad(m)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_sdsa_matches_its_formula():
    torch.manual_seed(0)
    m = SpikeDrivenSelfAttention(16, 2, neuron=NeuronSpec(backend="torch"))
    x = spikes(2, 2, 8, 16)
    q, k, v = m.qkv_lif(m.qkv(x)).chunk(3, dim=-1)
    kv = spikeattn.neuron.lif_multistep((k * v).sum(2, keepdim=True), tau=2.0, v_th=0.5, detach_reset=True,
                                        surrogate=spikeattn.surrogate.Sigmoid(4.0), backend="torch")[0]
    proj = m.proj_lif(m.proj(q * kv))
    assert torch.equal(m(x), proj)


@pytest.mark.parametrize("cls", [SpikingSelfAttention, SpikeDrivenSelfAttention])
def test_layer_keeps_no_state_between_calls(cls):
    m = cls(16, 2)
    x = spikes(2, 2, 4, 16)
    first = m(x)
    assert m(spikes(2, 3, 4, 16)).shape == (2, 3, 4, 16)  # another batch size: no reset needed
    assert torch.equal(m(x), first)  # every call starts from rest
    assert all(n.v is None for n in m.modules() if isinstance(n, spikeattn.neuron.LIF))


@pytest.mark.parametrize("cls", [SpikingSelfAttention, SpikeDrivenSelfAttention])
def test_bad_inputs(cls):
    m = cls(16, 2)
    with pytest.raises(ValueError, match=r"\[T, B, N, C\]"):
        m(torch.zeros(2, 4, 16))
    with pytest.raises(ValueError, match="last dim C=16"):
        m(torch.zeros(2, 2, 4, 8))
    with pytest.raises(TypeError, match="floating point"):
        m(torch.zeros(2, 2, 4, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match="heads"):
        cls(16, 3)
    with pytest.raises(ValueError, match="order"):
        SpikingSelfAttention(16, 2, order="vk")
    with pytest.raises(ValueError, match=r"\[3, \.\.\., N, d\]"), pytest.deprecated_call():
        spike_attention(torch.zeros(2, 4, 4), 0.125)


def test_deprecated_stacked_spike_attention_is_the_op():
    qkv = spikes(3, 2, 2, 6, 4, rate=0.5)
    for order in ("qk_first", "kv_first"):
        with pytest.deprecated_call(match="ssa_tokens"):
            old = spike_attention(qkv, 0.125, order)
        assert torch.equal(old, (qkv[0] @ qkv[1].transpose(-2, -1) @ qkv[2]) * 0.125)
