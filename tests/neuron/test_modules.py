"""Neuron modules: functional == module, step modes, state and reset, backend choice, torch.compile, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeattn as sa
from spikeattn.ops.lif import resolve_backend


def test_module_equals_functional():
    x = torch.randn(5, 2, 9) + 0.5
    s_f, v_f = sa.neuron.lif_multistep(x, tau=3.0, v_th=0.8, v_reset=None, backend="torch")
    lif = sa.neuron.LIF(tau=3.0, v_th=0.8, v_reset=None, backend="cpu")
    assert torch.equal(lif(x), s_f)
    assert torch.equal(lif.v, v_f)


def test_single_step_equals_multi_step():
    x = torch.randn(6, 2, 9) + 0.5
    multi = sa.neuron.LIF(backend="cpu")
    single = sa.neuron.LIF(backend="cpu", step_mode="s")
    s_multi = multi(x)
    s_single = torch.stack([single(x_t) for x_t in x])
    assert torch.equal(s_multi, s_single)
    assert torch.equal(multi.v, single.v)


def test_state_and_reset():
    lif = sa.neuron.LIF(backend="cpu")
    x = torch.ones(1, 3, 4) * 1.5  # first call: h=0.75, no spike; second: h=1.125, spike
    first = lif(x)
    second = lif(x)  # the membrane carried over, so the second call fires differently
    assert not torch.equal(first, second)
    model = nn.Sequential(nn.Identity(), lif)
    sa.reset(model)
    assert lif.v is None
    assert torch.equal(lif(x), first)


def test_state_shape_mismatch_says_reset():
    lif = sa.neuron.LIF()
    lif(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"reset\(\)"):
        lif(torch.randn(2, 5, 4))


def test_hand_computed_soft_reset_if():
    # IF, v_th=1, soft reset: v accumulates x and loses 1 per spike.
    x = torch.tensor([0.6, 0.6, 0.6, 0.6, 0.6]).reshape(5, 1)
    s, v = sa.neuron.IF(v_reset=None, backend="cpu")(x), None
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]  # v: .6, .2(1.2-1), .8, .4(1.4-1), 0(1.0-1)


def test_plif_learns_tau():
    plif = sa.neuron.PLIF(init_tau=2.0, backend="cpu")
    assert plif.tau == pytest.approx(2.0)
    plif(torch.randn(4, 2, 8) + 1.0).sum().backward()
    assert plif.w.grad is not None and plif.w.grad.item() != 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes(dtype):
    lif = sa.neuron.LIF(backend="cpu")
    s = lif(torch.randn(3, 2, 5, dtype=dtype))
    assert s.dtype == dtype
    assert lif.v.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


def test_auto_picks_the_fused_cpu_path_and_really_runs_it(monkeypatch):
    assert resolve_backend("auto", torch.zeros(1), sa.surrogate.ATan()) == "cpu"
    calls = []
    from spikeattn.ops.lif import cpu

    original = cpu.fused_lif_forward

    def spy(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(cpu, "fused_lif_forward", spy)
    # The op dispatches through the registered kernel; count calls of the C entry point instead.
    entry = cpu._entry("forward", torch.float32)
    monkeypatch.setattr(cpu, "_entry", lambda kind, dtype: (calls.append(kind), entry)[1] if kind == "forward" else None)
    sa.neuron.LIF()(torch.randn(2, 2, 3))
    assert calls, "backend='auto' on the CPU did not run the fused kernel"


def test_custom_surrogate_falls_back_to_reference():
    class Mine(sa.surrogate.ATan):
        pass

    assert resolve_backend("auto", torch.zeros(1), Mine()) == "torch"
    with pytest.raises(ValueError, match="built-in surrogates"):
        resolve_backend("cpu", torch.zeros(1), Mine())


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(8, 16), sa.neuron.LIF(backend="cpu"), nn.Linear(16, 4), sa.neuron.LIF(backend="cpu"))
    x = torch.randn(4, 3, 8)
    eager = model(x)
    sa.reset(model)
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    assert torch.equal(out, eager)
    out.sum().backward()
    assert model[0].weight.grad is not None


# ---- bad input -------------------------------------------------------------------------


def test_no_time_dimension():
    with pytest.raises(ValueError, match=r"time-major \[T, B, \.\.\.\]"):
        sa.neuron.LIF()(torch.randn(5))


def test_integer_input():
    with pytest.raises(TypeError, match="floating point"):
        sa.neuron.LIF()(torch.ones(2, 3, dtype=torch.int64))


@pytest.mark.parametrize("tau", [1.0, 0.5, float("nan")])
def test_tau_must_exceed_one(tau):
    with pytest.raises(ValueError, match="tau must be a finite number > 1"):
        sa.neuron.LIF(tau=tau)
    with pytest.raises(ValueError, match="tau must be a finite number > 1"):
        sa.neuron.lif_multistep(torch.randn(2, 2), tau=tau)


def test_nan_caught_in_debug_mode_only():
    x = torch.randn(2, 2, 3)
    x[1, 0, 2] = float("nan")
    sa.neuron.LIF()(x)  # no check (and no sync) by default
    with sa.debug(), pytest.raises(ValueError, match="x_seq contains 1 NaN"):
        sa.neuron.LIF()(x)


def test_bad_backend_and_step_mode():
    with pytest.raises(ValueError, match="backend must be one of"):
        sa.neuron.LIF(backend="cuda")(torch.randn(2, 2))
    with pytest.raises(ValueError, match="step_mode"):
        sa.neuron.LIF(step_mode="multi")


def test_cupy_backend_without_gpu_is_a_clear_error():
    with pytest.raises((RuntimeError, ValueError), match="cupy|cuda"):
        sa.neuron.LIF(backend="cupy")(torch.randn(2, 2))


def test_v0_dtype_mismatch():
    with pytest.raises(ValueError, match="v0 must be torch.float32"):
        sa.neuron.lif_multistep(torch.randn(2, 3), v0=torch.zeros(3, dtype=torch.float64))
