"""Every cuda/*.cu compiles with nvcc for sm_80 and sm_90, with the options the CuPy loader uses.

Kernels are templates, so each file is compiled together with every instantiation its launcher
loads (the same name expressions NVRTC gets). Needs nvcc only, no GPU; skipped where nvcc is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from spikeattn._paths import kernel_dir
from spikeattn.ops import _cuda
from spikeattn.ops.lif import cupy as cuda_lif

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")

ARCHS = ("sm_80", "sm_90")
# The instantiations each launcher compiles; a .cu file missing here is compiled as it stands.
NAME_EXPRESSIONS = {"lif.cu": cuda_lif.NAME_EXPRESSIONS}
SOURCES = sorted(p.name for p in kernel_dir().glob("*.cu"))
ENTRY = r"\.(?:visible|weak) \.entry (\w+)"  # nvcc: visible; NVRTC name expressions: weak


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(file, arch) -> (cubin bytes, PTX text); each (file, arch) is compiled once per session."""
    out = tmp_path_factory.mktemp("nvcc")
    done = {}

    def compile_one(file: str, arch: str):
        if (file, arch) not in done:
            stem = f"{file.removesuffix('.cu')}_{arch}"
            wrapper = out / f"{stem}.cu"
            names = NAME_EXPRESSIONS.get(file, ())
            table = f"void* sa_instances[] = {{{', '.join(f'(void*)&{n}' for n in names)}}};\n" if names else ""
            wrapper.write_text(f'#include "{file}"\n{table}')
            keep = out / stem
            keep.mkdir(exist_ok=True)
            cmd = [NVCC, *_cuda.compile_options(), f"-arch={arch}", "--cubin", "-Werror", "all-warnings",
                   "--keep", "--keep-dir", str(keep), "-o", str(out / f"{stem}.cubin"), str(wrapper)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            assert result.returncode == 0, f"$ {' '.join(cmd)}\n{result.stderr}"
            ptx = next(keep.glob("*.ptx")).read_text()
            done[file, arch] = (out / f"{stem}.cubin").read_bytes(), ptx
        return done[file, arch]

    return compile_one


def test_there_are_kernel_sources():
    assert "lif.cu" in SOURCES


def test_options_are_exact_math():
    assert "--fmad=false" in _cuda.OPTIONS
    assert not any("fast" in o for o in _cuda.OPTIONS)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", SOURCES)
def test_compiles(build, file, arch):
    cubin, ptx = build(file, arch)
    assert cubin[:4] == b"\x7fELF"
    assert f".target {arch}" in ptx
    entries = re.findall(ENTRY, ptx)
    assert len(entries) >= len(NAME_EXPRESSIONS.get(file, ())), "an instantiation is missing"


def _kernel_bodies(ptx: str) -> dict[str, str]:
    parts = re.split(ENTRY, ptx)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("arch", ARCHS)
def test_lif_forward_is_not_contracted(build, arch):
    """No FMA and no approximate division in the forward: its fp32 spikes must round like torch."""
    _, ptx = build("lif.cu", arch)
    forward = {k: v for k, v in _kernel_bodies(ptx).items() if "lif_forward_kernel" in k}
    assert len(forward) == sum("forward" in n for n in cuda_lif.NAME_EXPRESSIONS)
    for name, body in forward.items():
        assert "fma." not in body, f"{name}: FMA contraction"
        assert "div.approx" not in body and "div.full" not in body, f"{name}: approximate division"
        if "Id" not in name:  # fp32 state: tau's division is the IEEE one
            assert "div.rn.f32" in body, name


@pytest.mark.parametrize("arch", ARCHS)
def test_lif_kernels_use_no_shared_memory_or_barriers(build, arch):
    """The host emulation runs threads one after another: that is exact only without these."""
    _, ptx = build("lif.cu", arch)
    assert "bar.sync" not in ptx and "barrier" not in ptx and ".shared" not in ptx


def _find_nvrtc() -> str | None:
    """libnvrtc from the pip wheel (nvidia-cuda-nvrtc-cu12, what CuPy uses) or the system."""
    try:
        import nvidia.cuda_nvrtc as pkg  # the wheel's namespace package

        libs = sorted(Path(next(iter(pkg.__path__))).glob("lib/libnvrtc.so*"))
        if libs:
            return str(libs[0])
    except ImportError:
        pass
    return ctypes.util.find_library("nvrtc")


def nvrtc_ptx(lib_path: str, file: str, names: tuple[str, ...], arch: str) -> tuple[str, dict[str, str]]:
    """Compile like spikeattn.ops._cuda (source with #line, options, name expressions) with NVRTC."""
    lib = ctypes.CDLL(lib_path)
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), _cuda.source(file).encode(), file.encode(), 0, None, None) == 0
    for n in names:
        assert lib.nvrtcAddNameExpression(prog, n.encode()) == 0
    opts = [o.encode() for o in (*_cuda.compile_options(), f"--gpu-architecture={arch}")]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert rc == 0, log.value.decode()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    lowered = {}
    for n in names:
        out = ctypes.c_char_p()
        assert lib.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(out)) == 0
        lowered[n] = out.value.decode()
    return ptx.value.decode(), lowered


@pytest.mark.skipif(_find_nvrtc() is None, reason="needs libnvrtc (pip install nvidia-cuda-nvrtc-cu12)")
def test_lif_compiles_with_nvrtc_as_cupy_does():
    """The runtime path: NVRTC, not nvcc, with the loader's exact source text and options."""
    ptx, lowered = nvrtc_ptx(_find_nvrtc(), "lif.cu", cuda_lif.NAME_EXPRESSIONS, "compute_80")
    bodies = _kernel_bodies(ptx)
    assert set(lowered.values()) == set(bodies), "a name expression did not become a kernel"
    for name, body in bodies.items():
        if "lif_forward_kernel" in name:
            assert "fma." not in body, f"{name}: FMA contraction"
