"""SpikeGPT's channel-mix core (``spikeattn.ops.srffn``): the fused CPU op against the plain torch formulation
(values and gradients bit for bit), relu^2's backward taken from the output, the in-place buffers, ``auto``,
the registered ops and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from spikeattn.ops import srffn as ff
from spikeattn.ops._pointwise_host import run as run_kernel
from spikeattn.ops.srffn import naive_srffn, srffn
from tests.conftest import OpNames, assert_close

needs_kernel = pytest.mark.skipif(not ff.cpu.is_available(), reason="needs g++ for the CPU kernels")


def inputs(lead, C, H, O, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    xk, xr = (torch.randn(*lead, C, generator=g, dtype=dtype) for _ in range(2))
    weights = [torch.randn(*shape, generator=g, dtype=dtype) / C ** 0.5 for shape in ((H, C), (O, C), (O, H))]
    return [xk, xr, *weights], torch.randn(*lead, O, generator=g, dtype=dtype)


def run(backend, tensors, grad):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = srffn(*leaves, backend=backend)
    return out, torch.autograd.grad(out, leaves, grad)


@needs_kernel
@settings(max_examples=30, deadline=None, derandomize=True)
@given(lead=st.lists(st.integers(1, 6), min_size=1, max_size=2), C=st.integers(1, 40), H=st.integers(1, 70),
       O=st.integers(1, 40), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_fused_has_the_bits_of_the_reference(lead, C, H, O, dtype):
    tensors, grad = inputs(lead, C, H, O, dtype, seed=C * H + O)
    (out, grads), (ref, ref_grads) = run("cpu", tensors, grad), run("torch", tensors, grad)
    assert out.shape == (*lead, O) and torch.equal(out, ref)
    names = ("xk", "xr", "key_weight", "receptance_weight", "value_weight")
    # With a dimension of 1 a matrix is both row- and column-major and autograd may pick the other layout
    # for a gradient GEMM (another order of the same sums): fp rounding there, bit for bit elsewhere.
    degenerate = 1 in (C, H, O, torch.Size(lead).numel())
    for name, a, e in zip(names, grads, ref_grads):
        if degenerate:
            assert_close(a, e, 1e-5 if dtype == torch.float32 else 1e-12, 0.0, what=name)
        else:
            assert torch.equal(a, e), name


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_square_backward_from_the_output(dtype):
    """``(g * sqrt(relu(x)^2)) * 2`` is ``(g * relu(x)) * 2`` bit for bit at zeros, negatives, NaN, infinities
    and from 1.1e-19 to 1.8e19; below (where relu(x)^2 underflows) it stays within 2.2e-19 |g|."""
    x = torch.tensor([0.0, -0.0, -3.0, float("nan"), float("inf"), -float("inf"), 1.1e-19, 1.8e19, 1e-3, 7.5,
                      1e-30, 3e-20], dtype=dtype)
    x = torch.cat([x, torch.randn(5000, dtype=dtype) * 10, torch.rand(5000, dtype=dtype) * 1e-18])
    g = torch.randn(x.shape, dtype=dtype)
    y = torch.relu(x) ** 2
    expected = torch.ops.spikeattn.relu_square_backward(x, g)
    got = g.clone()
    run_kernel("relu_square_backward_from_y", y, got, got)  # in place, as the op calls it
    exact = (x <= 0) | x.isnan() | (x >= 1.1e-19) | (dtype == torch.float64)
    assert torch.equal(got[exact].nan_to_num(7.0), expected[exact].nan_to_num(7.0))
    assert ((got - expected)[~exact].abs() <= 2.2e-19 * g[~exact].abs()).all()


class NewTensors(TorchDispatchMode):
    """Shapes of the tensors ops return in fresh memory (not views, not written in place)."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)}
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.shapes.append(tuple(t.shape))
        return out


@needs_kernel
def test_hidden_layer_gets_one_buffer_each_way():
    """relu^2 runs over the key GEMM's output and its backward over dL/dh: one [tokens, H] buffer forward
    (kept for the backward) and one backward, where autograd through the separate ops makes two each."""
    tensors, grad = inputs((3, 7), 8, 32, 8)

    def hidden(seen):  # [tokens, H] buffers, flat or [3, 7, H]
        return sum(s[-1] == 32 and math.prod(s[:-1]) == 21 for s in seen.shapes)

    with NewTensors() as fwd:
        out, h, s, v = ff.cpu.fused_srffn(*tensors)
    with NewTensors() as bwd:
        ff.cpu.fused_srffn_backward(grad, *tensors, h, s, v)
    assert hidden(fwd) == 1 and hidden(bwd) == 1
    leaves = [t.detach().requires_grad_(True) for t in tensors]
    with NewTensors() as ref:
        naive_srffn(*leaves).backward(grad)
    assert hidden(ref) >= 4  # the pre-activation, relu^2, dL/dh, dL/d pre-activation

@needs_kernel
def test_auto_takes_the_op_for_large_fp32_and_fp64_only():
    big, _ = inputs((2, 64), 128, 16, 8)  # 16384 elements in xk: MIN_FUSED_NUMEL
    small, _ = inputs((2, 3), 8, 16, 8)
    for tensors, dtype, expected in ((big, torch.float32, True), (big, torch.float64, True),
                                     (small, torch.float32, False), (big, torch.bfloat16, False)):
        with OpNames() as names:
            srffn(*(t.to(dtype) for t in tensors))
        assert ("spikeattn::srffn" in names.names) == expected, (dtype, tensors[0].shape)
    assert ff.resolve_backend("auto", big[0], big[1].double()) == "torch"


@needs_kernel
def test_opcheck():
    tensors, grad = inputs((2, 3), 5, 12, 4)
    torch.library.opcheck(torch.ops.spikeattn.srffn.default, tuple(t.requires_grad_(True) for t in tensors))
    out, h, s, v = torch.ops.spikeattn.srffn(*tensors)
    torch.library.opcheck(torch.ops.spikeattn.srffn_backward.default, (grad, *(t.detach() for t in tensors),
                                                                       h.detach(), s.detach(), v.detach()))


def test_bad_input():
    tensors, _ = inputs((2, 3), 5, 12, 4)
    xk, xr, wk, wr, wv = tensors
    with pytest.raises(ValueError, match="key_weight"):
        srffn(xk, xr, wk.t(), wr, wv)
    with pytest.raises(ValueError, match="xr"):
        srffn(xk, xr[:, :2], wk, wr, wv)
    with pytest.raises(TypeError, match="xk must be a floating-point"):
        srffn(xk.long(), xr, wk, wr, wv)
    if ff.cpu.is_available():
        with pytest.raises(TypeError, match="float32 or float64 tensors of one dtype"):
            srffn(xk, xr, wk.double(), wr, wv, backend="cpu")


def test_torch_backend_is_the_reference():
    tensors, grad = inputs((4,), 6, 10, 3, torch.bfloat16)
    assert torch.equal(srffn(*tensors), naive_srffn(*tensors))
    assert_close(srffn(*tensors).float(), naive_srffn(*(t.float() for t in tensors)), 2e-2, 2e-2, what="bf16")


@pytest.mark.slow
@needs_kernel
def test_relu_square_backward_from_its_output_is_exact_for_every_fp32_in_range():
    """The claim behind relu^2's backward from its output: the kernel's (g * sqrt(r * r)) * 2 is autograd's
    g * 2 * r for every fp32 r in [1.1e-19, 1.8e19] (g = 1), checked one by one (about 1.2e9 values). The
    kernel's std::sqrt is IEEE's correctly rounded one; torch.sqrt on an AMD EPYC was not for some values in
    range (a check through torch.sqrt failed there), so the check runs the kernel itself."""
    lo = int(torch.tensor(1.1e-19, dtype=torch.float32).view(torch.int32))
    hi = int(torch.tensor(1.8e19, dtype=torch.float32).view(torch.int32))
    step = 1 << 25
    for start in range(lo, hi + 1, step):
        r = torch.arange(start, min(start + step, hi + 1), dtype=torch.int32).view(torch.float32)
        gx = torch.empty_like(r)
        run_kernel("relu_square_backward_from_y", r * r, torch.ones_like(r), gx)
        assert torch.equal(gx, r * 2), start
