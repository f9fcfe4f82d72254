"""Run the CUDA kernels of ``cuda/*.cu`` on the CPU: compile them with g++ and cuda/host_shim.h.

``build(file, name_expressions, out_dir)`` writes a small launcher that includes the .cu file
itself, instantiates every name expression (the same list the CuPy loader compiles) and exports
``sa_emu_launch(name, grid, block, params)``, where ``params`` follows cuLaunchKernel (pointers to
the argument values). ``EmulatedLauncher`` then stands in for a module's ``_launch``: it takes the
same ``(name, grid, block, args, device)`` with numpy-scalar args and CPU tensor pointers.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from spikeattn._paths import kernel_dir

# As spikeattn/ops/_native.py: no fast-math, no FMA contraction (g++ contracts by default in GNU
# mode), so fp32 results round like torch. No -march=native: the emulation checks logic, not speed.
CXXFLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-fno-strict-aliasing")

_CTYPES = {np.dtype(np.uint64): ctypes.c_uint64, np.dtype(np.int64): ctypes.c_int64,
           np.dtype(np.int32): ctypes.c_int32, np.dtype(np.float32): ctypes.c_float,
           np.dtype(np.float64): ctypes.c_double}


def compiler() -> str | None:
    return shutil.which("g++")


def launcher_source(file: str, name_expressions: tuple[str, ...]) -> str:
    rows = ",\n".join(
        f'  {{"{name}", [](dim3 g, dim3 b, void** p) {{ sa_launch_params(&{name}, g, b, p); }}}}'
        for name in name_expressions
    )
    return f"""#include "{file}"
#include <cstring>
struct SaEntry {{ const char* name; void (*launch)(dim3, dim3, void**); }};
static const SaEntry sa_table[] = {{
{rows}
}};
extern "C" int sa_emu_launch(const char* name, unsigned grid, unsigned block, void** params) {{
  for (const SaEntry& e : sa_table)
    if (std::strcmp(e.name, name) == 0) {{ e.launch(dim3(grid), dim3(block), params); return 0; }}
  return 1;
}}
"""


def build(file: str, name_expressions: tuple[str, ...], out_dir: Path) -> ctypes.CDLL:
    """Compile ``cuda/<file>`` for the host with the shim; returns the loaded library."""
    folder = kernel_dir()
    src = out_dir / f"{Path(file).stem}_emulated.cpp"
    src.write_text(launcher_source(file, name_expressions))
    lib = out_dir / f"{Path(file).stem}_emulated.so"
    cmd = [compiler(), *CXXFLAGS, f"-I{folder}", "-include", str(folder / "host_shim.h"), "-o", str(lib), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"host build of {file} failed:\n$ {' '.join(cmd)}\n{result.stderr}")
    return ctypes.CDLL(str(lib))


class EmulatedLauncher:
    """Drop-in for ``_launch(name, grid, block, args, device)``; records the kernels it ran."""

    def __init__(self, lib: ctypes.CDLL):
        self._fn = lib.sa_emu_launch
        self._fn.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        self._fn.restype = ctypes.c_int
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, name: str, grid: int, block: int, args: tuple, device=None) -> None:
        # Each value must be the exact C type of its parameter, as CuPy passes raw bytes too.
        bad = [i for i, a in enumerate(args) if not isinstance(a, np.generic)]
        if bad:
            raise TypeError(f"{name}: arguments {bad} are not numpy scalars; their C type would be a guess")
        values = [_CTYPES[a.dtype](a.item()) for a in args]
        params = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        if self._fn(name.encode(), grid, block, params) != 0:
            raise KeyError(f"kernel {name!r} is not among the emulated instantiations")
        self.calls.append((name, grid, block))
