"""cuda/wkv.cu: compiled by nvcc for sm_80 and sm_90 (skipped only without nvcc), run on the CPU
(g++ + cuda/host_shim.h) through the real launcher code of spikeattn/ops/wkv/cupy.py against the
torch reference, and on a GPU when one is present.

In the emulation only ``cupy._launch`` (CuPy and the stream) is replaced; allocation, grid and the
typed argument list are the ones the GPU gets. Outputs are poisoned with NaN before every launch.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from spikeattn._paths import kernel_dir
from spikeattn.ops import _cuda
from spikeattn.ops.wkv import cpu as cpu_wkv
from spikeattn.ops.wkv import cupy as cuda_wkv
from spikeattn.ops.wkv import wkv
from spikeattn.ops.wkv.reference import naive_wkv
from tests.conftest import assert_close
from tests.ops import cuda_emulation
from tests.ops.test_wkv import grads, make_inputs

NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="needs nvcc")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_builds_every_instantiation(tmp_path, arch):
    """The same options as the CuPy loader; every kernel the launcher names ends up in the cubin."""
    wrapper = tmp_path / "wkv_all.cu"
    refs = ", ".join(f"(void*)&{name}" for name in cuda_wkv.NAME_EXPRESSIONS)
    wrapper.write_text(f'#include "wkv.cu"\nvoid* sa_kernels[] = {{{refs}}};\n')
    cubin = tmp_path / f"wkv_{arch}.cubin"
    cmd = [NVCC, *_cuda.compile_options(), "-cubin", f"-arch={arch}", "-o", str(cubin), str(wrapper)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = cubin.read_bytes()
    for kind in ("forward", "backward"):
        for f in "fd":  # float, double
            assert f"wkv_{kind}_kernelI{f}E".encode() in data, (kind, f)


@pytest.fixture(scope="module")
def launcher_lib(tmp_path_factory):
    if cuda_emulation.compiler() is None:
        pytest.skip("needs g++ for the host build")
    return cuda_emulation.build("wkv.cu", cuda_wkv.NAME_EXPRESSIONS, tmp_path_factory.mktemp("wkv_emulated"))


@pytest.fixture
def launcher(launcher_lib, monkeypatch):
    emu = cuda_emulation.EmulatedLauncher(launcher_lib)
    monkeypatch.setattr(cuda_wkv, "_launch", emu)
    monkeypatch.setattr(cuda_wkv, "_alloc", lambda shape, dtype, device: torch.full(shape, float("nan"), dtype=dtype))
    return emu


def run_kernels(w, u, k, v, gy):
    y, lse = cuda_wkv.cuda_wkv_forward(w, u, k, v)
    assert not lse.isnan().any()
    return y, cuda_wkv.cuda_wkv_backward(w, u, k, v, y, lse, gy)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 9, 3), (2, 40, 260), (1, 600, 2)], ids=str)
def test_emulated_kernels_match_reference(launcher, shape, dtype):
    w, u, k, v = make_inputs(*shape, dtype=dtype, k_scale=4.0, seed=shape[1])
    gy = torch.randn(shape, dtype=dtype)
    y_ref, g_ref = grads(naive_wkv, (w, u, k, v), gy)
    y, g = run_kernels(w, u, k, v, gy)
    rtol = 1e-12 if dtype == torch.float64 else 2e-6
    assert_close(y, y_ref, rtol, what="y")
    for name, a, e in zip("wukv", g, g_ref):
        assert_close(a, e, 4 * rtol, what=f"grad {name}")
    B, _, C = shape
    blocks = -(-B * C // cuda_wkv.BLOCK)
    assert launcher.calls == [(cuda_wkv.kernel_name(kind, dtype), blocks, cuda_wkv.BLOCK) for kind in ("forward", "backward")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_emulated_kernels_are_the_cpu_kernels_bit_for_bit(launcher, dtype):
    """wkv.cu and wkv_host.cpp share wkv_core.cuh: the same arithmetic, so the same bits, with the host's
    scalar exp/log (the CPU build without libmvec; with it, exp/log differ in the last bits)."""
    w, u, k, v = make_inputs(2, 30, 70, dtype=dtype)
    gy = torch.randn(2, 30, 70, dtype=dtype)
    y, g = run_kernels(w, u, k, v, gy)
    y_cpu, lse_cpu = cpu_wkv.fused_wkv_forward(w, u, k, v, vector_math=False)
    g_cpu = cpu_wkv.fused_wkv_backward(w, u, k, v, y_cpu, lse_cpu, gy, vector_math=False)
    assert torch.equal(y, y_cpu)
    for name, a, e in zip("wukv", g, g_cpu):
        # gw, gu: per-batch partials summed by torch in both launchers, so equal bits too
        assert torch.equal(a, e), name


def test_kernel_source_compiles_alone_with_gxx():
    folder = kernel_dir()
    cmd = [cuda_emulation.compiler() or "g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", "-I", str(folder),
           "-include", str(folder / "host_shim.h"), "-x", "c++", str(folder / "wkv.cu")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not cuda_wkv.is_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gpu_matches_reference(dtype):
    w, u, k, v = make_inputs(3, 257, 130, dtype=dtype, k_scale=4.0)
    gy = torch.randn(k.shape, dtype=dtype)
    y_ref, g_ref = grads(naive_wkv, (w, u, k, v), gy)
    y, g = grads(lambda *a: wkv(*a, backend="cupy"), tuple(x.cuda() for x in (w, u, k, v)), gy.cuda())
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    assert_close(y.cpu(), y_ref, rtol, what="y")
    for name, a, e in zip("wukv", g, g_ref):
        assert_close(a.cpu(), e, 4 * rtol, what=f"grad {name}")
