"""Parity with spikingjelly 2.0 multi-step LIFNode / ParametricLIFNode / IFNode (its torch/CPU path).

Same maths, same operation order: spikes are equal bit for bit in fp32, the final membrane to 1e-6,
input gradients (and PLIF's w gradient) to 1e-5 relative.
"""

from __future__ import annotations

import pytest
import torch

import spikeattn as sa
from tests.conftest import assert_close

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

# Surrogates both libraries have: ours -> theirs. spikingjelly's PiecewiseQuadratic(alpha) is our
# Triangle(gamma = 1/alpha): (1/gamma)^2 (gamma - |x|) = alpha - alpha^2 |x|.
SURROGATE_PAIRS = {
    "ATan": (sa.surrogate.ATan(2.5), lambda: sj_surrogate.ATan(alpha=2.5)),
    "Sigmoid": (sa.surrogate.Sigmoid(4.0), lambda: sj_surrogate.Sigmoid(alpha=4.0)),
    "Triangle": (sa.surrogate.Triangle(0.5), lambda: sj_surrogate.PiecewiseQuadratic(alpha=2.0)),
}
BACKENDS = ["torch", "cpu"]


def _run(node, x):
    x = x.clone().requires_grad_(True)
    spikes = node(x)
    return x, spikes


def _compare(ours, theirs, x, w, params=((), ())):
    """Run both on x, backprop sum(spikes * w) + sum(v^2); compare spikes, v, grads."""
    x_o, s_o = _run(ours, x)
    x_t, s_t = _run(theirs, x)
    assert s_o.dtype == s_t.dtype
    assert torch.equal(s_o, s_t), f"{int((s_o != s_t).sum())} spikes differ"
    v_t = theirs.v
    assert_close(ours.v, v_t, rtol=1e-6, atol=1e-6, what="final membrane")
    rate = s_o.mean().item()
    assert 0.02 < rate < 0.98, f"the case must exercise firing and silence, rate {rate}"
    loss_o = (s_o * w).sum() + (ours.v**2).sum()
    loss_t = (s_t * w).sum() + (v_t**2).sum()
    g_o = torch.autograd.grad(loss_o, [x_o, *params[0]])
    g_t = torch.autograd.grad(loss_t, [x_t, *params[1]])
    for a, b, name in zip(g_o, g_t, ["x", "w"]):
        assert_close(a, b, rtol=1e-5, atol=1e-7, what=f"grad {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sname", SURROGATE_PAIRS)
@pytest.mark.parametrize("tau", [2.0, 3.7])
@pytest.mark.parametrize("v_th", [1.0, 0.6])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, 0.3, None], ids=["hard0", "hard0.3", "soft"])
@pytest.mark.parametrize("decay_input", [True, False])
def test_lif(backend, sname, tau, v_th, detach_reset, v_reset, decay_input):
    ours_sg, theirs_sg = SURROGATE_PAIRS[sname]
    ours = sa.neuron.LIF(tau=tau, v_th=v_th, v_reset=v_reset, decay_input=decay_input,
                         detach_reset=detach_reset, surrogate=ours_sg, backend=backend)
    theirs = sj_neuron.LIFNode(tau=tau, decay_input=decay_input, v_threshold=v_th, v_reset=v_reset,
                               surrogate_function=theirs_sg(), detach_reset=detach_reset, step_mode="m")
    x = torch.randn(6, 3, 41) * 1.2 + (0.8 if decay_input else 0.4)
    _compare(ours, theirs, x, torch.randn_like(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sname", SURROGATE_PAIRS)
@pytest.mark.parametrize("init_tau", [2.0, 4.5])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, 0.3, None], ids=["hard0", "hard0.3", "soft"])
@pytest.mark.parametrize("decay_input", [True, False])
def test_plif(backend, sname, init_tau, detach_reset, v_reset, decay_input):
    ours_sg, theirs_sg = SURROGATE_PAIRS[sname]
    ours = sa.neuron.PLIF(init_tau=init_tau, v_reset=v_reset, decay_input=decay_input,
                          detach_reset=detach_reset, surrogate=ours_sg, backend=backend)
    theirs = sj_neuron.ParametricLIFNode(init_tau=init_tau, decay_input=decay_input, v_reset=v_reset,
                                         surrogate_function=theirs_sg(), detach_reset=detach_reset, step_mode="m")
    assert ours.w.item() == theirs.w.item()
    x = torch.randn(6, 3, 41) * 1.2 + (0.8 if decay_input else 0.4)
    _compare(ours, theirs, x, torch.randn_like(x), params=([ours.w], [theirs.w]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sname", SURROGATE_PAIRS)
@pytest.mark.parametrize("v_th", [1.0, 0.6])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, 0.3, None], ids=["hard0", "hard0.3", "soft"])
def test_if(backend, sname, v_th, detach_reset, v_reset):
    ours_sg, theirs_sg = SURROGATE_PAIRS[sname]
    ours = sa.neuron.IF(v_th=v_th, v_reset=v_reset, detach_reset=detach_reset, surrogate=ours_sg, backend=backend)
    theirs = sj_neuron.IFNode(v_threshold=v_th, v_reset=v_reset, surrogate_function=theirs_sg(),
                              detach_reset=detach_reset, step_mode="m")
    x = torch.randn(6, 3, 41) * 0.8 + 0.2
    _compare(ours, theirs, x, torch.randn_like(x))


def test_state_carries_over_between_calls_like_spikingjelly():
    ours = sa.neuron.LIF(tau=2.0, surrogate=sa.surrogate.ATan(2.0), backend="cpu")
    theirs = sj_neuron.LIFNode(tau=2.0, surrogate_function=sj_surrogate.ATan(), step_mode="m")
    for _ in range(3):
        x = torch.randn(4, 2, 17) + 0.5
        assert torch.equal(ours(x), theirs(x))
    assert torch.equal(ours.v, theirs.v)
