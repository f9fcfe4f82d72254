"""The one loader of the CUDA kernel sources (``cuda/*.cu``) into CuPy ``RawModule`` objects.

Each (file, options, kernel names, device) is compiled once per process (NVRTC through CuPy, which
also keeps its own on-disk cache). The source gets a ``#line`` directive so compiler errors point at
the real file. CuPy is imported here, inside the functions, never at import time.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from spikeattn._paths import kernel_dir
from spikeattn.ops._compile import machine_constant

# --fmad=false: no FMA contraction, so fp32 results round exactly like torch's elementwise ops
# (the forward's spikes are bit-identical to the reference). Never add --use_fast_math.
# The build test (tests/ops/test_lif_cuda_build.py) compiles with these same options under nvcc.
OPTIONS = ("--std=c++17", "--fmad=false")


def source(file: str) -> str:
    """Text of ``cuda/<file>`` with a ``#line`` directive naming its real path."""
    path = kernel_dir() / file
    return f'#line 1 "{path}"\n' + path.read_text()


def compile_options(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """NVRTC/nvcc options: the shared ones, the kernel folder on the include path, then ``extra``."""
    return (*OPTIONS, f"-I{kernel_dir()}", *extra)


def load_module(file: str, name_expressions: tuple[str, ...], options: tuple[str, ...] = (), device: int | None = None):
    """The compiled ``cupy.RawModule`` of ``cuda/<file>`` for ``device`` (default: the current one).

    Args:
        file: source file name inside the kernel folder, e.g. ``"lif.cu"``.
        name_expressions: the template instantiations to compile, e.g. ``("k<float, 4>",)``;
            look kernels up with ``module.get_function(expr)``.
        options: extra compiler options (for example ``-D`` defines).
        device: CUDA device ordinal.
    """
    import cupy  # optional dependency (the [cuda] extra)

    if device is None:
        device = cupy.cuda.Device().id
    return _load(file, tuple(name_expressions), tuple(options), int(device))


@functools.lru_cache(maxsize=None)
def _load(file: str, name_expressions: tuple[str, ...], options: tuple[str, ...], device: int):
    import cupy

    with cupy.cuda.Device(device):
        module = cupy.RawModule(
            code=source(file), options=compile_options(options), name_expressions=name_expressions
        )
        module.compile()  # compile now, on this device, so errors surface at load time
    return module


@functools.lru_cache(maxsize=None)
def get_function(file: str, name: str, name_expressions: tuple[str, ...], device: int):
    """One kernel of ``load_module(file, name_expressions, device=device)``, cached."""
    import cupy

    with cupy.cuda.Device(device):  # the function is loaded into this device's context
        return load_module(file, name_expressions, device=device).get_function(name)


@machine_constant
def is_available() -> bool:
    """True when CuPy imports and sees a GPU."""
    try:
        import cupy  # noqa: F401  (optional dependency, imported only when asked for)
    except ImportError:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:  # CuPy installed, but no driver or no device
        return False


BLOCK = 256  # threads per block; every kernel declares __launch_bounds__(256)


def blocks(threads: int) -> int:
    """Blocks of BLOCK threads that cover ``threads``."""
    n = (threads + BLOCK - 1) // BLOCK
    if n > 2**31 - 1:
        raise ValueError(f"too many threads for one launch: {threads}")
    return n


def launch(file: str, name_expressions: tuple[str, ...], name: str, grid: int, block: int, args: tuple,
           device: torch.device) -> None:
    """Run kernel ``name`` of ``cuda/<file>`` on torch's current stream of ``device``."""
    import cupy

    kernel = get_function(file, name, name_expressions, device.index)
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream, device.index)
    with cupy.cuda.Device(device.index), stream:
        kernel((grid,), (block,), args)


def pointer(t: torch.Tensor | None) -> np.uint64:
    """A kernel argument for ``t``'s data (null for None or an empty tensor)."""
    return np.uint64(0 if t is None or t.numel() == 0 else t.data_ptr())
