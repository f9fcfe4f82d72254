"""The CuPy backend on a real GPU against the torch reference; skipped without CuPy and a GPU.

The reference runs on the CPU copies of the same inputs: torch's CUDA division by a Python scalar
multiplies by the reciprocal (one rounding more), so only the CPU loop is the bit-exact oracle
that the kernels, compiled with --fmad=false, must match spike for spike.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch
from torch import nn

import spikeattn as sa
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF, CHARGE_PLIF, LIFParameters
from spikeattn.ops.lif import cupy as cuda_lif
from spikeattn.ops.lif import lif_multi_step, resolve_backend, state_dtype
from tests.conftest import SURROGATES, assert_close, grad_tolerance

HAS_GPU = torch.cuda.is_available() and cuda_lif.is_available()
gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA GPU")

MODES = {"IF": CHARGE_IF, "LIF": CHARGE_LIF, "PLIF": CHARGE_PLIF}
RESETS = {"hard0": 0.0, "hard0.3": 0.3, "soft": None}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}
SETTINGS = list(itertools.product(MODES, RESETS, [True, False], [False, True], range(len(SURROGATES))))


def test_importing_the_backend_does_not_import_cupy():
    code = "import sys, spikeattn.ops.lif.cupy, spikeattn.ops._cuda; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def launches(monkeypatch):
    """Names of the kernels launched; outputs are poisoned with NaN so unwritten elements show."""
    calls = []
    real = cuda_lif._launch

    def spy(name, *args):
        calls.append(name)
        return real(name, *args)

    monkeypatch.setattr(cuda_lif, "_launch", spy)

    def poisoned(shape, dtype, device):
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(cuda_lif, "_alloc", poisoned)
    return calls


def params(mode, v_reset, decay_input, detach_reset, surrogate, sd, device):
    decay = torch.tensor(1.0 / 2.7, dtype=sd, device=device) if mode == CHARGE_PLIF else 2.7
    return LIFParameters(mode, decay, 0.9, v_reset, decay_input, detach_reset, surrogate)


def run(backend, x, v0, p, w):
    """Spikes, final membrane and the gradients of a loss using both, on x's device."""
    x, v0 = x.detach().requires_grad_(True), v0.detach().requires_grad_(True)
    leaves = [x, v0]
    if p.mode == CHARGE_PLIF:
        p = p._replace(decay=p.decay.detach().to(x.device).requires_grad_(True))
        leaves.append(p.decay)
    spikes, v = lif_multi_step(x, v0, p, backend)
    grads = torch.autograd.grad((spikes.float() * w).sum() + (v * v).sum(), leaves)
    return spikes, v, grads


def check_gpu_against_reference(x, p, launches):
    """x on the GPU; the reference gets CPU copies. Spikes and fp32/fp64 v exact, gradients close."""
    sd = state_dtype(x.dtype)
    v0 = torch.randn(x.shape[1:], dtype=sd, device=x.device) * 0.5
    w = torch.randn(x.shape, device=x.device)
    s, v, g = run("cupy", x, v0, p, w)
    s_ref, v_ref, g_ref = run("torch", x.cpu(), v0.cpu(), p, w.cpu())
    vec = 1 if sd == torch.float64 or v0.numel() % 4 else 4  # fresh allocations are aligned
    expected = [cuda_lif.kernel_name(kind, x.dtype, vec) for kind in ("forward", "backward")]
    assert launches[-2:] == expected, "the CuPy kernels did not run (or not the expected ones)"
    for name, t in (("spikes", s), ("v", v), *zip(("grad x", "grad v0", "grad k"), g)):
        assert not t.isnan().any(), f"{name} has unwritten (NaN) elements"  # assert_close lets NaN through
    assert torch.equal(s.cpu(), s_ref), "spikes differ from the reference"
    if sd == torch.float64 or x.dtype == torch.float32:
        assert torch.equal(v.cpu(), v_ref), "final membrane differs from the reference"
    assert_close(v.cpu(), v_ref, 1e-6, 1e-6, what="v")
    assert_close(g[0].cpu(), g_ref[0], *grad_tolerance(x.dtype), what="grad x")
    assert_close(g[1].cpu(), g_ref[1], 1e-6, 1e-7, what="grad v0")
    if p.mode == CHARGE_PLIF:
        assert_close(g[2].cpu(), g_ref[2], 1e-5, 1e-6, what="grad k")  # a sum over up to 2^26 terms


@gpu
@needs_gpu
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_every_setting(launches, setting, dtype):
    mode, reset, decay_input, detach, sg = setting
    for N in (1011, 1012):  # the scalar and the 4-wide kernels
        x = (torch.randn(7, N, device="cuda") * 1.5 + 0.6).to(DTYPES[dtype])
        p = params(MODES[mode], RESETS[reset], decay_input, detach, SURROGATES[sg], state_dtype(x.dtype), "cuda")
        check_gpu_against_reference(x, p, launches)


SHAPES = [(1, 1), (2, 3), (7, 1007), (16, 1008), (33, 4099), (64, 4100), (8, 2**20 + 3), (64, 2**20 + 3), (8, 2**20)]


@gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,N", SHAPES, ids=[f"T{t}-N{n}" for t, n in SHAPES])
def test_shapes(launches, T, N, dtype):
    mode, reset, decay_input, detach, sg = SETTINGS[(T * 31 + N * 7 + len(dtype)) % len(SETTINGS)]
    x = (torch.randn(T, N, device="cuda") * 1.5 + 0.6).to(DTYPES[dtype])
    p = params(MODES[mode], RESETS[reset], decay_input, detach, SURROGATES[sg], state_dtype(x.dtype), "cuda")
    check_gpu_against_reference(x, p, launches)


@gpu
@needs_gpu
def test_non_contiguous_multi_dim_input(launches):
    x = (torch.randn(5, 8, 3, 6, device="cuda") + 0.6).transpose(1, 3)
    assert not x.is_contiguous()
    check_gpu_against_reference(x, params(CHARGE_PLIF, None, False, False, SURROGATES[2], torch.float32, "cuda"), launches)


@gpu
@needs_gpu
def test_runs_on_torchs_current_stream(launches):
    x = torch.randn(16, 4096, device="cuda") + 0.6
    p = params(CHARGE_LIF, 0.0, True, False, SURROGATES[0], torch.float32, "cuda")
    expected, _ = lif_multi_step(x, None, p, "cupy")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = x * 1.0  # queued on the side stream: the kernel must run after it, on the same stream
        spikes, _ = lif_multi_step(y, None, p, "cupy")
    side.synchronize()
    assert torch.equal(spikes, expected)


@gpu
@needs_gpu
def test_auto_picks_cupy_on_cuda(launches):
    x = torch.randn(3, 2, 5, device="cuda")
    assert resolve_backend("auto", x, sa.surrogate.ATan()) == "cupy"
    sa.neuron.LIF()(x.requires_grad_(True)).sum().backward()
    assert launches == [cuda_lif.kernel_name("forward", torch.float32, 1), cuda_lif.kernel_name("backward", torch.float32, 1)]


@gpu
@needs_gpu
def test_plif_module_learns_on_gpu(launches):
    x = torch.randn(6, 4, 64) + 1.0
    grads = []
    for device, backend in (("cuda", "cupy"), ("cpu", "torch")):
        plif = sa.neuron.PLIF(init_tau=2.0, backend=backend).to(device)
        plif(x.to(device)).sum().backward()
        grads.append(plif.w.grad.cpu())
    assert grads[0].item() != 0.0
    assert_close(grads[0], grads[1], 1e-5, 1e-7, what="grad w")


@gpu
@needs_gpu
def test_torch_compile_fullgraph(launches):
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(8, 16), sa.neuron.LIF(backend="cupy"), nn.Linear(16, 4),
                          sa.neuron.PLIF(backend="cupy")).cuda()
    x = torch.randn(4, 3, 8, device="cuda")
    eager = model(x)
    sa.reset(model)
    launches.clear()
    out = torch.compile(model, fullgraph=True)(x)
    # Spikes of the compiled graph: only a Linear rounded differently by a fused kernel could flip one.
    assert out.shape == eager.shape and (out != eager).float().mean().item() <= 0.01
    out.sum().backward()
    assert model[0].weight.grad is not None and model[3].w.grad is not None
    assert sum(n.startswith("lif_forward") for n in launches) == 2
    assert sum(n.startswith("lif_backward") for n in launches) == 2


@gpu
@needs_gpu
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("mode", ["LIF", "PLIF"])
def test_saved_bytes_per_neuron_step(mode, dtype):
    """LIF keeps only h (fp32: 4 bytes per neuron-step); PLIF also keeps x for its decay gradient."""
    T, B, N = 8, 4, 4096
    x = torch.randn(T, B, N, device="cuda", dtype=DTYPES[dtype], requires_grad=True)
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    neuron = (sa.neuron.LIF if mode == "LIF" else sa.neuron.PLIF)(backend="cupy").cuda()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        neuron(x)
    per_step = sum(saved.values()) / (T * B * N)
    expected = 4 + (x.element_size() + 4 / T if mode == "PLIF" else 0)  # h (+ x and v0 for PLIF)
    print(f"saved bytes per neuron-step, {mode} {dtype}: {per_step:.4f}")
    assert 4 <= per_step <= expected + 64 / (T * B * N)  # + the 0-dim decay tensors
