"""Every cuda/*.cu compiles with nvcc for sm_80 and sm_90, with the options the CuPy loader uses.

Kernels are templates, so each file is compiled together with every instantiation its launcher
loads (the same name expressions NVRTC gets). Needs nvcc only, no GPU; skipped where nvcc is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess

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
    entries = re.findall(r"\.visible \.entry (\w+)", ptx)
    assert len(entries) >= len(NAME_EXPRESSIONS.get(file, ())), "an instantiation is missing"


def _kernel_bodies(ptx: str) -> dict[str, str]:
    parts = re.split(r"\.visible \.entry (\w+)", ptx)
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
