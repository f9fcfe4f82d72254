"""CUDA kernels for the LIF op through CuPy (``cuda/lif.cu``).

Registers ``spikeattn::lif_forward`` / ``lif_backward`` for CUDA tensors, mirroring ``cpu.py``:
same outputs, dtypes and shapes. Outputs are allocated by torch; the kernels get raw pointers and
run on torch's current stream, so nothing is copied and the op composes with autograd and
torch.compile like any other. Importing this module does not import CuPy (only calling a kernel does).
"""

from __future__ import annotations

import numpy as np
import torch

from spikeattn.functional.neuron import CHARGE_PLIF
from spikeattn.ops import _cuda
from spikeattn.ops._cuda import is_available  # re-exported: the backend table asks each backend
from spikeattn.ops._dtypes import state_dtype
from spikeattn.ops.lif.op import SCALAR_TYPES, is_rest, layout, materialize, state_shape

BLOCK = _cuda.BLOCK
_IN_T = {torch.float32: "float", torch.float64: "double", torch.float16: "sa_half", torch.bfloat16: "sa_bf16"}
_VECS = {torch.float32: (1, 4), torch.float16: (1, 4), torch.bfloat16: (1, 4), torch.float64: (1,)}


def kernel_name(kind: str, dtype: torch.dtype, vec: int) -> str:
    """Name expression of one template instantiation, e.g. ``lif_forward_kernel<float, float, 4>``."""
    acc = "double" if dtype == torch.float64 else "float"
    return f"lif_{kind}_kernel<{_IN_T[dtype]}, {acc}, {vec}>"


# Every instantiation the launcher may pick; compiled together into one module.
NAME_EXPRESSIONS = tuple(
    kernel_name(kind, dtype, vec) for kind in ("forward", "backward") for dtype in _IN_T for vec in _VECS[dtype]
)



def _launch(name: str, grid: int, block: int, args: tuple, device: torch.device) -> None:
    # A module-level hook: the host-emulation tests swap it for a CPU run of the same kernels.
    _cuda.launch("lif.cu", NAME_EXPRESSIONS, name, grid, block, args, device)


def _alloc(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # One place for output allocation, so tests can poison it with NaN.
    return torch.empty(shape, dtype=dtype, device=device)


_ptr = _cuda.pointer


def _vector_width(n: int, dtype: torch.dtype, tensors) -> int:
    """4 neurons per thread when every row of every tensor starts 4-element aligned, else 1."""
    vec = max(_VECS[dtype])
    if n % vec or any(t.data_ptr() % (vec * t.element_size()) for t in tensors if t.numel()):
        return 1
    return vec


def _grid(threads: int) -> int:  # a hook too: a test shortens it to prove outputs are checked
    return _cuda.blocks(threads)


def _decay_arg(decay: torch.Tensor, device: torch.device, sd: torch.dtype):
    """(tensor to keep alive, pointer, value): a tensor on the kernel's device is read by the kernel
    (PLIF's learnable k: no host sync); a CPU scalar (LIF's tau) is passed by value."""
    if decay.numel() != 1:
        raise ValueError(f"decay must hold one value, got shape {tuple(decay.shape)}")
    if decay.device == device:
        d = decay.detach().to(sd).contiguous()
        return d, _ptr(d), 0.0
    return None, np.uint64(0), float(decay)


def _scalar_args(decay_ptr, decay_value, sd, T, N, M, *scalars) -> tuple:
    """The kernels' trailing arguments (SA_LIF_SCALARS in lif.cu), typed as the C signature: the decay,
    the sizes, then the op's scalars typed by the ``LIFScalars`` table (floats in the state dtype)."""
    f = np.float64 if sd == torch.float64 else np.float32
    c_types = {"int": np.int32, "bool": np.int32, "float": f}
    typed = (c_types[t](v) for t, v in zip(SCALAR_TYPES, scalars, strict=True))
    return (decay_ptr, f(decay_value), np.int64(T), np.int64(N), np.int64(M), *typed)


def _expect(t: torch.Tensor, name: str, dtype: torch.dtype, shape) -> None:
    if t.dtype != dtype or tuple(t.shape) != tuple(shape):
        raise TypeError(f"{name} must be {dtype} of shape {tuple(shape)}, got {t.dtype} of shape {tuple(t.shape)}")


def cuda_lif_forward(x, v0, decay, batch_first, *scalars):
    """Returns ``(spikes like x, v_last [...] state dtype, h_seq like x in the state dtype)``."""
    x, v0 = x.contiguous(), materialize(v0, x.shape, batch_first, scalars[3]).contiguous()  # empty: from rest
    sd = state_dtype(x.dtype)
    _expect(v0, "v0", sd, state_shape(x.shape, batch_first))
    (T, N, M), dev = layout(x.shape, batch_first), x.device
    spikes, h_seq, v_last = _alloc(x.shape, x.dtype, dev), _alloc(x.shape, sd, dev), _alloc(v0.shape, sd, dev)
    if T == 0:
        v_last.copy_(v0)
    elif N:
        keep, decay_ptr, decay_value = _decay_arg(decay, dev, sd)
        vec = _vector_width(M, x.dtype, (x, v0, spikes, h_seq, v_last))
        args = (_ptr(x), _ptr(v0), _ptr(spikes), _ptr(h_seq), _ptr(v_last),
                *_scalar_args(decay_ptr, decay_value, sd, T, N, M, *scalars))
        _launch(kernel_name("forward", x.dtype, vec), _grid(-(-N // vec)), BLOCK, args, dev)
        del keep  # the launch is queued on the current stream; the allocator orders the free after it
    return spikes, v_last, h_seq


def cuda_lif_backward(grad_spikes, grad_v, h_seq, x, v0, decay, batch_first, *scalars):
    """Returns ``(grad_x like grad_spikes, grad_v0 [...] state dtype, grad_decay like decay)``."""
    plif = scalars[0] == CHARGE_PLIF
    grad_spikes, grad_v, h_seq = grad_spikes.contiguous(), grad_v.contiguous(), h_seq.contiguous()
    sd = state_dtype(grad_spikes.dtype)
    v_shape = state_shape(h_seq.shape, batch_first)
    _expect(h_seq, "h_seq", sd, grad_spikes.shape)
    no_grad_v0 = is_rest(grad_v, h_seq.shape, batch_first)  # an empty grad_v: zero, and no grad_v0 wanted
    if no_grad_v0:
        grad_v = torch.zeros(v_shape, dtype=sd, device=h_seq.device)
    _expect(grad_v, "grad_v", sd, v_shape)
    (T, N, M), dev = layout(h_seq.shape, batch_first), h_seq.device
    grad_x, grad_v0 = _alloc(grad_spikes.shape, grad_spikes.dtype, dev), _alloc(v_shape, sd, dev)
    if not plif:  # x and v0 are saved (and read) only for PLIF's decay gradient
        x = v0 = None
    else:
        x, v0 = x.contiguous(), materialize(v0, h_seq.shape, batch_first, scalars[3]).contiguous()
        _expect(x, "x", grad_spikes.dtype, grad_spikes.shape)
        _expect(v0, "v0", sd, v_shape)
    partial = None
    if T == 0:
        grad_v0.copy_(grad_v)
    elif N:
        keep, decay_ptr, decay_value = _decay_arg(decay, dev, sd)
        read_write = (grad_spikes, grad_v, h_seq, grad_x, grad_v0, *((x, v0) if plif else ()))
        vec = _vector_width(M, grad_spikes.dtype, read_write)
        threads = -(-N // vec)
        partial = _alloc((threads,), torch.float64, dev) if plif else None
        args = (_ptr(grad_spikes), _ptr(grad_v), _ptr(h_seq), _ptr(x), _ptr(v0), _ptr(grad_x), _ptr(grad_v0),
                _ptr(partial), *_scalar_args(decay_ptr, decay_value, sd, T, N, M, *scalars))
        _launch(kernel_name("backward", grad_spikes.dtype, vec), _grid(threads), BLOCK, args, dev)
        del keep
    if no_grad_v0:
        grad_v0 = grad_v0.new_empty(0)
    if partial is None:
        return grad_x, grad_v0, torch.zeros_like(decay)
    grad_k = partial.sum(dtype=torch.float64)  # a tree sum: stays accurate for 2^24 neurons
    return grad_x, grad_v0, grad_k.to(device=decay.device, dtype=decay.dtype).reshape(decay.shape)


def cuda_lif_inference(x, v0, decay, batch_first, *scalars):
    """``(spikes, v_last)``: the forward kernel (its h_seq store is cheap next to a launch on a GPU)."""
    spikes, v_last, _ = cuda_lif_forward(x, v0, decay, batch_first, *scalars)
    return spikes, v_last


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::lif_forward", "cuda", cuda_lif_forward)
torch.library.impl("spikeattn::lif_inference", "cuda", cuda_lif_inference)
torch.library.impl("spikeattn::lif_backward", "cuda", cuda_lif_backward)
