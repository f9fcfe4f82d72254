"""relu(x)^2 and sigmoid(r) * v (``spikeattn.ops.relu_square`` / ``sigmoid_gate``): the fused CPU ops
against their references, values and gradients bit for bit (zeros, negatives, NaN, large values;
fp32, fp64), ``auto``'s choice (kernel for large contiguous fp32/fp64 CPU tensors, torch otherwise,
seen by which registered ops ran), the registered ops themselves, and bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeattn.ops import relu_square as rs
from spikeattn.ops import sigmoid_gate as sgate
from tests.conftest import OpNames

needs_kernel = pytest.mark.skipif(not rs.cpu.is_available(), reason="needs g++ for the CPU kernel")
OPS = {"relu_square": (rs, 1), "sigmoid_gate": (sgate, 2)}  # module, number of inputs


def run(name, backend, inputs, grad):
    """(output, input grads) of ``name`` with ``backend`` on fresh leaves copied from ``inputs``."""
    module, _ = OPS[name]
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    fn = module.relu_square if name == "relu_square" else module.sigmoid_gate
    y = fn(*leaves, backend=backend)
    y.backward(grad)
    return y.detach(), [x.grad for x in leaves]


def same_bits(a, b):
    return torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))


def spikeattn_ops(seen: OpNames) -> list[str]:
    """The spikeattn ops among those ``seen`` ran, without the namespace."""
    return [n.split("::")[1] for n in seen.names if n.startswith("spikeattn::")]


@needs_kernel
@settings(max_examples=30, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(OPS)), shape=st.tuples(st.integers(1, 8), st.integers(1, 40), st.integers(1, 400)),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_fused_op_has_the_bits_of_the_reference(name, shape, scale, dtype):
    g = torch.Generator().manual_seed(shape[0] * 1000 + shape[1])
    inputs = [(torch.randn(shape, generator=g) * scale).to(dtype) for _ in range(OPS[name][1])]
    inputs[0].view(-1)[0] = 0.0  # relu's kink
    if inputs[0].numel() > 1:
        inputs[0].view(-1)[1] = float("nan")
    grad = torch.randn(shape, generator=g).to(dtype)
    (y, grads), (y_ref, grads_ref) = (run(name, b, inputs, grad) for b in ("cpu", "torch"))
    assert y.dtype == dtype and same_bits(y, y_ref)
    assert all(same_bits(a, e) for a, e in zip(grads, grads_ref))


@settings(max_examples=10, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(OPS)), n=st.integers(1, 300), dtype=st.sampled_from([torch.bfloat16, torch.float16]))
def test_auto_on_other_dtypes_is_the_reference(name, n, dtype):
    inputs = [torch.randn(64, n).to(dtype) for _ in range(OPS[name][1])]
    grad = torch.randn(64, n).to(dtype)
    (y, grads), (y_ref, grads_ref) = (run(name, b, inputs, grad) for b in ("auto", "torch"))
    assert same_bits(y, y_ref) and all(same_bits(a, e) for a, e in zip(grads, grads_ref))


@needs_kernel
@pytest.mark.parametrize("name", sorted(OPS))
def test_auto_runs_the_registered_op_for_large_contiguous_fp32_only(name):
    module, n = OPS[name]
    xs = [torch.randn(64, 300, requires_grad=True) for _ in range(n)]  # >= MIN_FUSED_NUMEL
    assert xs[0].numel() >= rs.MIN_FUSED_NUMEL
    with OpNames() as seen:
        run(name, "auto", xs, torch.randn(64, 300))
    assert spikeattn_ops(seen) == [name, f"{name}_backward"]
    with OpNames() as seen:
        run(name, "auto", [x.detach().t() for x in xs], torch.randn(300, 64))  # not contiguous
        run(name, "auto", [x.detach().bfloat16() for x in xs], torch.randn(64, 300).bfloat16())
        run(name, "auto", [x.detach()[:2] for x in xs], torch.randn(2, 300))  # small
    assert spikeattn_ops(seen) == []


@needs_kernel
def test_registered_ops_directly():
    x, g = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    assert torch.equal(torch.ops.spikeattn.relu_square(x), rs.naive_relu_square(x))
    assert torch.equal(torch.ops.spikeattn.relu_square_backward(x, g), (g * x.relu()) * 2)
    r, v = torch.randn(5, 7), torch.randn(5, 7)
    out, s = torch.ops.spikeattn.sigmoid_gate(r, v)
    assert torch.equal(s, torch.sigmoid(r)) and torch.equal(out, sgate.naive_sigmoid_gate(r, v))
    gr, gv = torch.ops.spikeattn.sigmoid_gate_backward(s, v, g.float())
    assert torch.equal(gv, g.float() * s) and torch.equal(gr, ((g.float() * v) * (1 - s)) * s)


def test_bad_input():
    with pytest.raises(TypeError, match="x must be a floating-point"):
        rs.relu_square(torch.arange(4))
    with pytest.raises(TypeError, match="v must be a floating-point"):
        sgate.sigmoid_gate(torch.randn(3), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="backend must be one of"):
        rs.relu_square(torch.randn(3), backend="gpu")
    if rs.cpu.is_available():
        with pytest.raises(ValueError, match="one shape and device"):
            sgate.sigmoid_gate(torch.randn(3, 4), torch.randn(4), backend="cpu")
        with pytest.raises(TypeError, match="float32 or float64"):
            rs.relu_square(torch.randn(3).half(), backend="cpu")
