"""Where the non-Python files live: inside an installed wheel, or in the source tree."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

_PKG = Path(__file__).resolve().parent


def _find(packaged: str, in_tree: str) -> Path:
    # A wheel carries them inside the package (pyproject force-include); an editable
    # install or a plain checkout finds them beside the package.
    for candidate in (_PKG / packaged, _PKG.parent / in_tree):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"spikeattn: cannot find the {in_tree}/ folder (looked in {_PKG / packaged} and {_PKG.parent / in_tree})")


def kernel_dir() -> Path:
    """The folder of the kernel sources (``cuda/*.cu``, ``*.cuh``, ``lif_host.cpp``)."""
    return _find("_kernels", "cuda")


def hardware_dir() -> Path:
    """The folder of hardware profiles and the Lava runtime."""
    return _find("_hardware", "hardware")


def benchmarks_dir() -> Path:
    """The benchmark scripts (``benchmarks/bench_*.py``)."""
    return _find("_benchmarks", "benchmarks")


def runtime_module(name: str) -> ModuleType:
    """A numpy-only module of the Lava runtime (``hardware/lava/<name>.py``: quantize, artifact,
    ops_float, ...), loaded by path under a private name: it is not part of the package's imports."""
    path = hardware_dir() / "lava" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_spikeattn_lava_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
