"""cuda/lif.cu run on the CPU (g++ + cuda/host_shim.h) through the real CUDA launcher code of
spikeattn/ops/lif/cupy.py, against the torch reference: spikes exact, v and gradients within 1e-6.

Only ``cupy._launch`` (CuPy and the stream) is replaced; allocation, vector width, grid and the
typed argument list are the ones the GPU gets. Outputs are poisoned with NaN before every launch.
"""

from __future__ import annotations

import itertools
import subprocess

import pytest
import torch

from spikeattn._paths import kernel_dir
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif import cupy as cuda_lif
from spikeattn.ops.lif import state_dtype
from spikeattn.ops.lif.reference import naive_lif_multi_step
from spikeattn.ops.lif.op import LIFScalars
from tests.conftest import SURROGATES, assert_close, grad_tolerance
from tests.ops import cuda_emulation

pytestmark = pytest.mark.skipif(cuda_emulation.compiler() is None, reason="needs g++ for the host build")

MODES = {"IF": CHARGE_IF, "LIF": CHARGE_LIF, "PLIF": CHARGE_PLIF}
RESETS = {"hard0": 0.0, "hard0.3": 0.3, "soft": None}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}
TAU, V_TH = 2.7, 0.9


@pytest.fixture(scope="module")
def launcher_lib(tmp_path_factory):
    return cuda_emulation.build("lif.cu", cuda_lif.NAME_EXPRESSIONS, tmp_path_factory.mktemp("lif_emulated"))


@pytest.fixture
def launcher(launcher_lib, monkeypatch):
    emu = cuda_emulation.EmulatedLauncher(launcher_lib)
    monkeypatch.setattr(cuda_lif, "_launch", emu)
    monkeypatch.setattr(cuda_lif, "_alloc", lambda shape, dtype, device: torch.full(shape, torch.nan, dtype=dtype))
    return emu


def params(mode, v_reset, decay_input, detach_reset, surrogate, sd):
    decay = torch.tensor(1.0 / TAU, dtype=sd) if mode == CHARGE_PLIF else TAU
    return LIFParameters(mode, decay, V_TH, v_reset, decay_input, detach_reset, surrogate)


def op_scalars(p: LIFParameters):
    """The op's scalar arguments, as spikeattn.ops.lif.fused_lif_multi_step passes them."""
    return tuple(LIFScalars.of(p))


def run_reference(x, v0, p, w):
    x, v0 = x.detach().requires_grad_(True), v0.detach().requires_grad_(True)
    leaves = [x, v0]
    if p.mode == CHARGE_PLIF:
        p = p._replace(decay=p.decay.detach().requires_grad_(True))
        leaves.append(p.decay)
    spikes, v = naive_lif_multi_step(x, v0, p)
    grads = torch.autograd.grad((spikes.float() * w).sum() + (v * v).sum(), leaves)
    return spikes, v, grads


def run_kernels(x, v0, p, w, scalars=None, batch_first=False):
    """The CUDA impls on CPU tensors: forward, then backward of the same loss as run_reference.

    ``batch_first``: the kernels get a [B, T, ...] copy of the time-major ``x`` and ``w``; results
    come back time-major.
    """
    sd = state_dtype(x.dtype)
    decay = p.decay if p.mode == CHARGE_PLIF else torch.tensor(float(p.decay), dtype=sd)
    scalars = op_scalars(p) if scalars is None else scalars
    if batch_first:
        x, w = x.transpose(0, 1).contiguous(), w.transpose(0, 1).contiguous()
    spikes, v, h = cuda_lif.cuda_lif_forward(x, v0, decay, batch_first, *scalars)
    gx, gv0, gk = cuda_lif.cuda_lif_backward(w.to(x.dtype), 2 * v, h, x, v0, decay, batch_first, *scalars)
    # Outputs were NaN before the launch (and assert_close lets NaN through): all must be written.
    for name, t in (("spikes", spikes), ("v", v), ("h", h), ("grad x", gx), ("grad v0", gv0), ("grad k", gk)):
        assert not t.isnan().any(), f"{name} has unwritten (NaN) elements"
    assert torch.equal(spikes, (h >= scalars[2]).to(x.dtype)), "spikes are not h >= v_th"
    if batch_first:
        spikes, gx = spikes.transpose(0, 1), gx.transpose(0, 1)
    return spikes, v, (gx, gv0, gk) if p.mode == CHARGE_PLIF else (gx, gv0)


def mismatches(x, p, scalars=None, batch_first=False) -> list[str]:
    """Names of the outputs where the kernels and the reference disagree (empty: they agree)."""
    sd = state_dtype(x.dtype)
    v0 = torch.randn(x.shape[1:], dtype=sd) * 0.5
    w = torch.randn(x.shape)
    s_ref, v_ref, g_ref = run_reference(x, v0, p, w)
    s, v, g = run_kernels(x, v0, p, w, scalars, batch_first)
    assert s.dtype == x.dtype and v.dtype == sd and g[0].dtype == x.dtype and g[1].dtype == sd
    bad = []
    if not torch.equal(s, s_ref):
        bad.append("spikes")
    checks = [("v", v, v_ref, 1e-6, 1e-6)]
    checks += [("grad x", g[0], g_ref[0], *grad_tolerance(x.dtype)), ("grad v0", g[1], g_ref[1], 1e-6, 1e-7)]
    if p.mode == CHARGE_PLIF:
        checks.append(("grad k", g[2], g_ref[2], 1e-6, 1e-7))
    for name, a, e, rtol, atol in checks:
        try:
            assert_close(a, e, rtol, atol, what=name)
        except AssertionError as err:
            bad.append(str(err))
    return bad


def make_input(T, N, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, N, generator=g) * 1.5 + 0.6).to(dtype)


SETTINGS = list(itertools.product(MODES, RESETS, [True, False], [False, True], range(len(SURROGATES))))


def setting_id(s):
    mode, reset, decay_input, detach, sg = s
    decay_in = "decay_in" if decay_input else "no_decay_in"
    return f"{mode}-{reset}-{decay_in}-{'det' if detach else 'att'}-{type(SURROGATES[sg]).__name__}"


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("setting", SETTINGS, ids=setting_id)
def test_every_setting(launcher, setting, dtype):
    """Each setting on the scalar path (N odd) and the 4-wide path (N % 4 == 0), T = 7, 2 and 1."""
    mode, reset, decay_input, detach, sg = setting
    for T, N in ((7, 1011), (2, 1012), (1, 3)):
        x = make_input(T, N, DTYPES[dtype], seed=N)
        p = params(MODES[mode], RESETS[reset], decay_input, detach, SURROGATES[sg], state_dtype(x.dtype))
        assert mismatches(x, p) == []
        rate = (naive_lif_multi_step(x, torch.zeros(N, dtype=state_dtype(x.dtype)), p)[0] > 0).float().mean()
        assert T * N < 10 or 0.05 < rate < 0.95, f"the case must both fire and stay silent, rate {rate}"
    assert [name.endswith(", 1>") for name, *_ in launcher.calls] == [True, True, False, False, True, True]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 3, 4, 1007, 1008])
@pytest.mark.parametrize("T", [1, 2, 7])
def test_shapes(launcher, T, N, dtype):
    """Odd and aligned sizes, every dtype; the setting rotates with the case so all kinds appear."""
    mode, reset, decay_input, detach, sg = SETTINGS[(T * 31 + N * 7 + len(dtype)) % len(SETTINGS)]
    x = make_input(T, N, DTYPES[dtype], seed=T * N)
    p = params(MODES[mode], RESETS[reset], decay_input, detach, SURROGATES[sg], state_dtype(x.dtype))
    assert mismatches(x, p) == []
    vec = 1 if DTYPES[dtype] == torch.float64 or N % 4 else 4
    assert [name for name, *_ in launcher.calls] == [cuda_lif.kernel_name(k, x.dtype, vec) for k in ("forward", "backward")]


def test_multi_dim_and_unaligned_views(launcher):
    """[T, B, C] input whose (contiguous) data starts off a 16-byte boundary: the scalar path."""
    x = make_input(1, 5 * 48 + 1, torch.float32).flatten()[1:].view(5, 2, 3, 8)
    assert x.is_contiguous() and x.data_ptr() % 16 != 0
    p = params(CHARGE_PLIF, 0.3, True, False, SURROGATES[0], torch.float32)
    assert mismatches(x, p) == []
    assert launcher.calls[0][0].endswith(", 1>")


@pytest.mark.parametrize("mode", MODES)
def test_empty_v0_and_grad_v(launcher, mode):
    """The ops' empty tensors (spikeattn.ops.lif.op): an empty v0 starts at v_reset, an empty grad_v is zero and
    gives an empty grad_v0: the same outputs as the full tensors they stand for."""
    x = make_input(5, 2 * 1011, torch.float32).view(5, 2, 1011)
    w = torch.randn(x.shape)
    p = params(MODES[mode], 0.3, True, False, SURROGATES[2], torch.float32)
    decay = p.decay if p.mode == CHARGE_PLIF else torch.tensor(float(p.decay))
    scalars, empty = op_scalars(p), torch.empty(0)
    full_v0, zero_gv = torch.full(x.shape[1:], 0.3), torch.zeros(x.shape[1:])
    s, v, h = cuda_lif.cuda_lif_forward(x, full_v0, decay, False, *scalars)
    s_e, v_e, h_e = cuda_lif.cuda_lif_forward(x, empty, decay, False, *scalars)
    assert 0.05 < s.mean() < 0.95
    assert torch.equal(s, s_e) and torch.equal(v, v_e) and torch.equal(h, h_e)
    gx, gv0, gk = cuda_lif.cuda_lif_backward(w, zero_gv, h, x, full_v0, decay, False, *scalars)
    gx_e, gv0_e, gk_e = cuda_lif.cuda_lif_backward(w, empty, h, x, empty, decay, False, *scalars)
    assert torch.equal(gx, gx_e) and torch.equal(gk, gk_e) and gv0_e.numel() == 0 and gv0.shape == x.shape[1:]


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp64"])
@pytest.mark.parametrize("M", [3, 8, 1011])
def test_batch_first_layout(launcher, M, dtype):
    """[B, T, M] input (SpikeGPT's [B, T, C]) stepped in place equals the time-major reference; the
    4-wide path only when every row of M neurons starts aligned (M % 4 == 0)."""
    for i, mode in enumerate((CHARGE_LIF, CHARGE_PLIF, CHARGE_IF)):
        x = make_input(6, 3 * M, DTYPES[dtype], seed=M + i).view(6, 3, M)
        p = params(mode, 0.0, True, True, SURROGATES[i], state_dtype(x.dtype))
        assert mismatches(x, p, batch_first=True) == []
    vec = 4 if M % 4 == 0 and dtype != "fp64" else 1
    assert all(name.endswith(f", {vec}>") for name, *_ in launcher.calls)


def test_batch_first_detects_a_time_major_kernel(launcher, monkeypatch):
    """The batch-first case can fail: kernels told the layout is time-major read the wrong steps."""
    x = make_input(6, 3 * 8, torch.float32).view(6, 3, 8)
    p = params(CHARGE_LIF, 0.0, True, False, SURROGATES[0], torch.float32)
    real = cuda_lif.layout
    monkeypatch.setattr(cuda_lif, "layout", lambda shape, batch_first: real((shape[1], shape[0], *shape[2:]), False))
    assert mismatches(x, p, batch_first=True) != []


def test_decay_by_value(launcher, monkeypatch):
    """LIF's tau arrives as a CPU scalar while x is on the GPU: the by-value path of the kernels."""
    real = cuda_lif._decay_arg
    monkeypatch.setattr(cuda_lif, "_decay_arg", lambda d, device, sd: real(d, torch.device("meta"), sd))
    for mode in (CHARGE_LIF, CHARGE_PLIF):
        p = params(mode, 0.0, True, False, SURROGATES[1], torch.float32)
        assert mismatches(make_input(4, 37, torch.float32), p) == []


def _mutations(p):
    """Kernel scalars that each get one thing wrong, against the reference of the right ones."""
    mode, decay_input, v_th, v_reset, soft, detach, sid, alpha = op_scalars(p)
    yield "other surrogate", (mode, decay_input, v_th, v_reset, soft, detach, (sid + 1) % 5, alpha)
    yield "surrogate param", (mode, decay_input, v_th, v_reset, soft, detach, sid, alpha * 1.25)
    yield "v_reset", (mode, decay_input, v_th, v_reset + 0.3, soft, detach, sid, alpha)
    yield "soft reset", (mode, decay_input, v_th, v_reset, not soft, detach, sid, alpha)
    yield "detach_reset", (mode, decay_input, v_th, v_reset, soft, not detach, sid, alpha)
    yield "decay_input", (mode, not decay_input, v_th, v_reset, soft, detach, sid, alpha)
    yield "charge mode", ((mode + 1) % 3, decay_input, v_th, v_reset, soft, detach, sid, alpha)
    yield "threshold", (mode, decay_input, v_th * 1.01, v_reset, soft, detach, sid, alpha)


@pytest.mark.parametrize("sg", range(len(SURROGATES)), ids=lambda i: type(SURROGATES[i]).__name__)
def test_cases_detect_wrong_kernels(launcher, sg):
    """The parity cases can fail: every wrong setting, and a time loop shifted by one step, mismatch."""
    x = make_input(7, 1011, torch.float32)
    p = params(CHARGE_LIF, 0.0, True, False, SURROGATES[sg], torch.float32)
    for what, scalars in _mutations(p):
        assert mismatches(x, p, scalars) != [], f"a kernel with the wrong {what} would pass"
    shifted = torch.cat([x[1:], x[:1]])  # what an off-by-one in t would read
    sd = torch.float32
    v0, w = torch.zeros(1011, dtype=sd), torch.randn(x.shape)
    s_ref, *_ = run_reference(x, v0, p, w)
    s_shift, *_ = run_kernels(shifted, v0, p, w)
    assert not torch.equal(s_ref, s_shift)


def test_hand_computed(launcher):
    # tau=2, v_th=1, hard reset to 0, decay_input: h = v + (x - v) / 2
    x = torch.tensor([[1.5], [1.5], [0.0], [4.0]])
    p = LIFParameters(CHARGE_LIF, 2.0, 1.0, 0.0, True, False, SURROGATES[0])
    s, v, _ = cuda_lif.cuda_lif_forward(x, torch.zeros(1), torch.tensor(2.0), False, *op_scalars(p))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0] and v.item() == 0.0


def test_kernel_source_compiles_alone_with_gxx(tmp_path):
    """cuda/lif.cu itself (not a copy) is valid host C++ under the shim."""
    folder = kernel_dir()
    cmd = [cuda_emulation.compiler(), "-std=c++17", "-fsyntax-only", "-Wall", "-Wno-unknown-pragmas", "-Werror", "-I", str(folder),
           "-include", str(folder / "host_shim.h"), "-x", "c++", str(folder / "lif.cu")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_poisoning_catches_a_short_grid(launcher, monkeypatch):
    """A launch one block short leaves NaN behind, and the checks see it."""
    real = cuda_lif._grid
    monkeypatch.setattr(cuda_lif, "_grid", lambda threads: real(threads) - 1)
    p = params(CHARGE_LIF, 0.0, True, False, SURROGATES[0], torch.float32)
    with pytest.raises(AssertionError, match="unwritten"):
        mismatches(make_input(3, 1011, torch.float32), p)
