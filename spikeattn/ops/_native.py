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
from spikeattn.ops._compile import machine_constant

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
# Vector exp/log from glibc's libmvec for the kernels that include cuda/vector_math.h (the WKV
# kernel's `#pragma omp simd` channel loops); where -lmvec does not link (no glibc libmvec) the
# build goes on without, and those loops call the scalar exp/log.
VECTOR_MATH_FLAGS = ("-DSA_LIBMVEC", "-fopenmp-simd", "-lmvec")
# Flag groups a build may drop, most wanted first: each failed compile retries without the next group.
OPTIONAL_FLAGS = (VECTOR_MATH_FLAGS, OPENMP_FLAGS)


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


@functools.lru_cache(maxsize=None)
def cpu_vendor() -> str:
    """The CPU's ``vendor_id`` from /proc/cpuinfo (``GenuineIntel``, ``AuthenticAMD``), or "" where there is none."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), "")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (``avx2``, ``avx512f``, ...), empty where there is none."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), ()))


def has_avx512() -> bool:
    """Whether the CPU has AVX-512 (``avx512f``): several kernel and GEMM choices were measured to differ on it."""
    return "avx512f" in cpu_flags()


def _cpu_signature() -> str:
    # -march=native: a library built on one CPU must not be loaded on another.
    try:
        flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")]
        return flags[0] if flags else platform.processor()
    except OSError:
        return platform.processor()


class BuildError(RuntimeError):
    """A host kernel could not be built or loaded here (no compiler, failed compile, unwritable cache)."""


FIX = ("install a C++ compiler (g++) or point $CXX at one, and make $SPIKEATTN_CACHE (default ~/.cache/spikeattn) "
       "a writable folder")


def host_availability(source: str):
    """The ``is_available()`` of a backend whose kernels are ``cuda/<source>``: True once the library loads.

    The first call builds it; a failed build is remembered (for this $CXX, $PATH and cache folder),
    so ``backend="auto"`` falls back to torch without retrying, and ``build_error`` says why.
    """
    @machine_constant
    def is_available() -> bool:
        return build_error(source) is None

    is_available.source = source
    return is_available


def build_error(source: str) -> str | None:
    """None when ``cuda/<source>`` builds and loads here, else the reason it does not."""
    return _build_error(source, compiler(), os.environ.get("SPIKEATTN_CACHE"))


@functools.lru_cache(maxsize=None)
def _build_error(source: str, cxx: str | None, cache: str | None) -> str | None:
    try:
        load_host_library(source)
    except BuildError as e:
        return str(e)
    return None


@functools.lru_cache(maxsize=None)
def load_host_library(source: str, vector_math: bool = True) -> ctypes.CDLL:
    """Compile (if needed) and load ``cuda/<source>`` as a shared library; ``BuildError`` says why not.

    ``vector_math=False`` builds without libmvec (``VECTOR_MATH_FLAGS``): the build a machine without
    libmvec gets, which tests and benchmarks compare with.
    """
    groups = tuple(g for g in OPTIONAL_FLAGS if vector_math or g is not VECTOR_MATH_FLAGS)
    cxx = compiler()
    if cxx is None:
        raise BuildError(f"no C++ compiler: {os.environ.get('CXX', 'g++')!r} is not on PATH")
    folder = kernel_dir()
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.cuh")) + sorted(folder.glob("*.h")) + [folder / source]:
        digest.update(path.name.encode() + path.read_bytes())
    optional = [flag for group in groups for flag in group]
    digest.update(" ".join((cxx, *CXXFLAGS, *optional, platform.machine(), _cpu_signature())).encode())
    target = cache_dir() / f"{Path(source).stem}-{digest.hexdigest()[:16]}.so"
    if not target.exists():
        _compile(cxx, folder / source, target, groups)
    try:
        return ctypes.CDLL(str(target))
    except OSError as e:  # e.g. a cache on a noexec mount
        raise BuildError(f"cannot load {target}: {e}") from None


def _compile(cxx: str, source: Path, target: Path, groups: tuple[tuple[str, ...], ...]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build to a temporary name and rename: concurrent builders never see half a file.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
    except OSError as e:
        raise BuildError(f"cannot write the kernel cache {target.parent} ({e.strerror or e})") from None
    try:
        optional = list(groups)
        while True:  # all optional groups, then without the first (libmvec), then without any
            flags = [flag for group in optional for flag in group]
            cmd = [cxx, *CXXFLAGS, "-o", tmp, str(source), "-lpthread", *flags]  # libraries after the source
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode == 0 or not optional:
                break
            optional.pop(0)
        if result.returncode != 0:
            detail = result.stderr.strip() or "no error output"
            raise BuildError(f"compiling {source.name} with {cxx} failed (exit {result.returncode}): {detail}")
        os.replace(tmp, target)
    except OSError as e:  # the compiler could not even start
        raise BuildError(f"cannot run the compiler {cxx} ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
