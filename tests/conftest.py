"""Shared test helpers: one tolerance helper, one GPU skip, deterministic seeds."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from spikeattn import surrogate as sg

# Every built-in surrogate, with a non-default parameter so a kernel that ignores it fails.
SURROGATES = [sg.ATan(3.0), sg.Sigmoid(5.0), sg.FastSigmoid(10.0), sg.Triangle(0.7), sg.Rectangle(0.8)]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float = 0.0, what: str = ""):
    """Element-wise |a - e| <= atol + rtol * (|e| + max|e|), reporting the worst element.

    The max|e| term makes the tolerance relative to the tensor's scale as well: a gradient element
    that is a near-cancellation of large terms (the reset path) is only as exact as those terms.
    """
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double(), expected.double()
    err = (a - e).abs()
    bound = atol + rtol * (e.abs() + (e.abs().max() if e.numel() else 0.0))
    bad = (err > bound) | (a.isnan() != e.isnan())  # NaN compares False: flag it explicitly
    if bad.any():
        i = int(torch.argmax((err - bound).flatten()))
        raise AssertionError(
            f"{what}: {int(bad.sum())}/{bad.numel()} elements differ; worst at {i}: "
            f"{a.flatten()[i].item()!r} vs {e.flatten()[i].item()!r} (rtol={rtol}, atol={atol})"
        )


def grad_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for gradients written in `dtype`: fp32/fp64 math agrees to ~1e-6; a bf16/fp16
    result may round the same fp32 value one ulp apart."""
    return {torch.float64: (1e-10, 1e-12), torch.float32: (1e-6, 1e-7),
            torch.bfloat16: (2**-7, 1e-6), torch.float16: (2**-10, 1e-6)}[dtype]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """torch on one thread for the test, restored after (small ops where threads only contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def onednn_preferred(monkeypatch):
    """``ops.linear``'s ``auto`` as on an AMD CPU, where it takes oneDNN, whatever this machine is."""
    from spikeattn.ops.linear import onednn

    monkeypatch.setattr(onednn, "pays_off", lambda: True)


class OpNames(TorchDispatchMode):
    """Records the name of every op that runs under it (``"aten::mm"``, ``"spikeattn::lif_forward"``)."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.name())
        return func(*args, **(kwargs or {}))


def at_threads(n: int, fn):
    """``fn()`` with torch at ``n`` threads, restored afterwards."""
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(n)
        return fn()
    finally:
        torch.set_num_threads(old)

