"""The one builder of the host (CPU) kernels: g++ -> shared library -> ctypes, cached on disk.

Builds ``cuda/<name>`` once per (source text, headers, flags, compiler, CPU) and reuses the
library afterwards. A plain C ABI avoids torch's C++ headers, so a cold build takes seconds.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from spikeattn._paths import kernel_dir

# No -ffast-math, and no FMA contraction: the forward must round exactly like torch's
# elementwise ops so fp32 spikes are bit-identical to the reference.
CXXFLAGS = (
    "-O3", "-std=c++17", "-shared", "-fPIC", "-march=native", "-ffp-contract=off", "-fno-fast-math",
    "-fno-math-errno",  # exp sets no errno; changes no result
)
# Parallel loops on torch's OpenMP runtime: torch loads libgomp.so.1 first, and the library's
# libgomp.so.1 dependency binds to that copy (one thread pool, no second team competing with
# torch's spinning workers). A compiler without OpenMP (Apple clang) builds without it: the
# sources then fall back to std::thread (``#ifdef _OPENMP``).
OPENMP_FLAGS = ("-fopenmp",)


def compiler() -> str | None:
    """The C++ compiler to use (``$CXX`` or g++), or None when there is none."""
    return _which(os.environ.get("CXX", "g++"), os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=8)
def _which(name: str, path: str) -> str | None:
    # Every fused op asks `available()` per call; an uncached PATH search (~0.25 ms of stat calls)
    # was 20% of a small Spikformer's forward. Keyed on $CXX and $PATH, so changing either still counts.
    return shutil.which(name, path=path)


def cache_dir() -> Path:
    return Path(os.environ.get("SPIKEATTN_CACHE", Path.home() / ".cache" / "spikeattn"))


def _cpu_signature() -> str:
    # -march=native: a library built on one CPU must not be loaded on another.
    try:
        flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")]
        return flags[0] if flags else platform.processor()
    except OSError:
        return platform.processor()


@functools.lru_cache(maxsize=None)
def load_host_library(source: str) -> ctypes.CDLL:
    """Compile (if needed) and load ``cuda/<source>`` as a shared library."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("spikeattn: the fused CPU backend needs a C++ compiler (g++ or $CXX); none was found on PATH")
    folder = kernel_dir()
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.cuh")) + sorted(folder.glob("*.h")) + [folder / source]:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(" ".join((cxx, *CXXFLAGS, *OPENMP_FLAGS, platform.machine(), _cpu_signature())).encode())
    target = cache_dir() / f"{Path(source).stem}-{digest.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build to a temporary name and rename: concurrent builders never see half a file.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        cmd = [cxx, *CXXFLAGS, *OPENMP_FLAGS, "-o", tmp, str(folder / source), "-lpthread"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:  # maybe no OpenMP: the same build without it
            cmd = [c for c in cmd if c not in OPENMP_FLAGS]
            result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            os.unlink(tmp)
            raise RuntimeError(f"spikeattn: building {source} failed:\n$ {' '.join(cmd)}\n{result.stderr}")
        os.replace(tmp, target)
    return ctypes.CDLL(str(target))
