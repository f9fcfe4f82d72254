"""The defined behaviour of the LIF op on +inf, -inf and NaN input, the same on every backend.

Every backend computes the reference formulas in IEEE arithmetic (a hard reset is
``spike * v_reset + (1 - spike) * h``, a soft one ``h - spike * v_th``), so:
+inf fires; a hard reset of an infinite membrane gives NaN and a NaN membrane never fires again;
-inf never fires and leaves -inf, which the next leak turns into NaN; IF with a soft reset keeps an
infinite membrane and fires at every step. Backends: torch (the reference), cpu (the fused host
kernel) and the CUDA kernel compiled for the host (tests/ops/cuda_emulation.py).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif import BACKENDS, cpu, state_dtype
from spikeattn.ops.lif import cupy as cuda_lif
from spikeattn.ops.lif.op import LIFScalars
from spikeattn.ops.lif.reference import naive_lif_multi_step
from spikeattn.surrogate import ATan
from tests.conftest import assert_close
from tests.ops import cuda_emulation

MODES = {"IF": CHARGE_IF, "LIF": CHARGE_LIF, "PLIF": CHARGE_PLIF}
RESETS = {"hard0": 0.0, "hard-0.3": -0.3, "soft": None}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}
INF, NAN = math.inf, math.nan


def nonfinite_input(dtype) -> torch.Tensor:
    """[T=5, N=12]: each column a different mix of +inf, -inf, NaN and finite values over time."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 12, generator=g) + 0.5
    x[0, 0] = x[2, 1] = x[4, 2] = INF
    x[0, 3] = x[1, 4] = -INF
    x[1, 5] = x[3, 6] = NAN
    x[:, 7] = INF
    x[:, 8] = -INF
    x[0, 9], x[1, 9] = INF, -INF
    x[2, 10], x[3, 10] = -INF, INF  # columns 11 stays finite: the finite neurons beside are untouched
    return x.to(dtype)


def params(mode, v_reset, decay_input, sd):
    decay = torch.tensor(1 / 2.5, dtype=sd) if mode == CHARGE_PLIF else 2.5
    return LIFParameters(mode, decay, 0.9, v_reset, decay_input, False, ATan(2.0))


def assert_same(spikes, v, spikes_ref, v_ref, what):
    assert torch.equal(spikes, spikes_ref), f"{what}: spikes differ"
    assert (v.isnan() == v_ref.isnan()).all() and (v.isinf() == v_ref.isinf()).all(), f"{what}: non-finite v differ"
    finite = v_ref.isfinite()
    assert torch.equal(v[~finite & ~v_ref.isnan()], v_ref[~finite & ~v_ref.isnan()]), f"{what}: infinities differ"
    assert_close(v[finite], v_ref[finite], 1e-6, 1e-6, what=f"{what}: v")


CASES = list(itertools.product(MODES, RESETS, [True, False], DTYPES))
IDS = [f"{m}-{r}-{'decay_in' if d else 'no_decay_in'}-{t}" for m, r, d, t in CASES]


def _case(mode, reset, decay_input, dtype):
    x = nonfinite_input(DTYPES[dtype])
    sd = state_dtype(x.dtype)
    p = params(MODES[mode], RESETS[reset], decay_input, sd)
    v0 = torch.full(x.shape[1:], 0.0 if p.v_reset is None else p.v_reset, dtype=sd)
    return x, v0, p


@pytest.mark.skipif(not cpu.is_available(), reason="needs the fused CPU kernels")
@pytest.mark.parametrize("mode, reset, decay_input, dtype", CASES, ids=IDS)
def test_cpu_matches_reference(mode, reset, decay_input, dtype):
    x, v0, p = _case(mode, reset, decay_input, dtype)
    with torch.no_grad():
        ref = naive_lif_multi_step(x, v0, p)
        assert_same(*BACKENDS["cpu"](x, v0, p), *ref, what="cpu")


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    if cuda_emulation.compiler() is None:
        pytest.skip("needs g++ for the host build of cuda/lif.cu")
    lib = cuda_emulation.build("lif.cu", cuda_lif.NAME_EXPRESSIONS, tmp_path_factory.mktemp("lif_nonfinite"))
    return cuda_emulation.EmulatedLauncher(lib)


@pytest.mark.parametrize("mode, reset, decay_input, dtype", CASES, ids=IDS)
def test_cuda_kernel_matches_reference(emulated, monkeypatch, mode, reset, decay_input, dtype):
    monkeypatch.setattr(cuda_lif, "_launch", emulated)
    # Poison with a finite sentinel (NaN is a legitimate output here): unwritten elements then differ.
    monkeypatch.setattr(cuda_lif, "_alloc", lambda shape, dtype, device: torch.full(shape, 7777.0, dtype=dtype))
    x, v0, p = _case(mode, reset, decay_input, dtype)
    decay = p.decay if p.mode == CHARGE_PLIF else torch.tensor(float(p.decay), dtype=v0.dtype)
    spikes, v, _ = cuda_lif.cuda_lif_forward(x, v0, decay, False, *LIFScalars.of(p._replace(detach_reset=False)))
    with torch.no_grad():
        assert_same(spikes, v, *naive_lif_multi_step(x, v0, p), what="cuda (host build)")


def test_defined_values_by_hand():
    """The behaviour itself (reference = every backend, above): tau=2.5, v_th=0.9, from v=v_reset."""
    x = torch.tensor([[INF, -INF, NAN, INF], [0.5, 0.5, 0.5, 0.5], [9.0, 9.0, 9.0, -INF]])  # [T=3, N=4]
    hard = params(CHARGE_LIF, 0.0, True, torch.float32)
    spikes, v = naive_lif_multi_step(x, torch.zeros(4), hard)
    assert spikes.tolist() == [[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]  # +inf fires once; NaN never fires
    assert v.isnan().all()  # 0 * inf in the reset, inf - inf in the leak, NaN in: each membrane is NaN
    if_soft = params(CHARGE_IF, None, True, torch.float32)
    spikes, v = naive_lif_multi_step(torch.tensor([[INF], [0.0], [-1.0]]), torch.zeros(1), if_soft)
    assert spikes.flatten().tolist() == [1, 1, 1] and v.item() == INF  # no leak: stays infinite, fires on


@pytest.mark.parametrize("v_th, v_reset", [(0.0, 0.0), (1.0, 1.0), (0.5, 1.0), (-1.0, 0.0)])
def test_v_th_must_exceed_v_reset_for_hard_reset(v_th, v_reset):
    import spikeattn as sa

    with pytest.raises(ValueError, match="v_th must be greater than v_reset"):
        sa.neuron.LIF(v_th=v_th, v_reset=v_reset)
    with pytest.raises(ValueError, match="v_th must be greater than v_reset"):
        sa.neuron.lif_multistep(torch.ones(2, 1, 3), v_th=v_th, v_reset=v_reset)
    sa.neuron.LIF(v_th=v_th, v_reset=None)  # a soft reset has no such constraint


@pytest.mark.parametrize("kw", [{"v_th": INF}, {"v_th": NAN}, {"v_reset": -INF}, {"v_th": "1"}, {"v_th": True}])
def test_thresholds_must_be_finite_numbers(kw):
    import spikeattn as sa

    with pytest.raises(ValueError, match="must be a finite number"):
        sa.neuron.LIF(**kw)
