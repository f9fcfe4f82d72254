"""The channel-mix core on the CPU: torch's GEMMs (the calls ``F.linear`` and autograd make, so their bits)
with the pointwise steps of ``cuda/pointwise_host.cpp`` written over buffers nobody reads again.

Forward: ``h = xk Wk^T`` then relu^2 in place (the pre-activation is not kept: the backward takes relu
from ``sqrt(h)``, the same value, see ``sa_relu_square_backward_from_y``), ``v = h Wv^T``, ``s = xr Wr^T``
then sigmoid in place, ``out = s * v``. Backward: the gate's one-pass kernel, then ``dL/dh = dL/dv Wv``
with relu^2's backward written over it in place. Autograd through the separate ops makes each of these a
fresh buffer, two of them ``[tokens, 4C]``; on a CPU whose allocator hands large freed blocks back to the
system, every fresh buffer is paged in again.
"""

from __future__ import annotations

import torch

from spikeattn.ops._pointwise_host import DTYPES, is_available, run

__all__ = ["DTYPES", "is_available", "fused_srffn", "fused_srffn_backward"]


def _check(xk, xr, wk, wr, wv) -> None:
    tensors = {"xk": xk, "xr": xr, "wk": wk, "wr": wr, "wv": wv}
    if xk.dtype not in DTYPES or any(t.dtype != xk.dtype for t in tensors.values()):
        raise TypeError("spikeattn::srffn runs on float32 or float64 tensors of one dtype, got "
                        + ", ".join(f"{n} {t.dtype}" for n, t in tensors.items()))
    C, H, O = xk.shape[-1], wk.shape[0], wv.shape[0]
    if not (xr.shape == xk.shape and wk.shape == (H, C) and wr.shape == (O, C) and wv.shape == (O, H)):
        raise ValueError("spikeattn::srffn needs xk, xr [..., C], wk [H, C], wr [O, C], wv [O, H], got "
                         + ", ".join(f"{n} {tuple(t.shape)}" for n, t in tensors.items()))


def fused_srffn(xk, xr, wk, wr, wv):
    """``(out, h, s, v)``; see ``reference.naive_srffn``."""
    _check(xk, xr, wk, wr, wv)
    lead, C = xk.shape[:-1], xk.shape[-1]
    xk2, xr2 = xk.reshape(-1, C), xr.reshape(-1, C)  # matmul's fold of [..., C]
    h = xk2.mm(wk.t())
    if h.numel():
        run("relu_square_forward", h, h)
    v = h.mm(wv.t())
    s = xr2.mm(wr.t()).sigmoid_()
    out = s * v
    return tuple(t.view(*lead, t.shape[-1]) for t in (out, h, s, v))


def fused_srffn_backward(grad, xk, xr, wk, wr, wv, h, s, v):
    """``dL/d(xk, xr, wk, wr, wv)`` from ``dL/dout`` and the forward's ``h, s, v``."""
    _check(xk, xr, wk, wr, wv)
    C, H, O = xk.shape[-1], wk.shape[0], wv.shape[0]
    xk2, xr2 = xk.reshape(-1, C), xr.reshape(-1, C)
    g, h, s, v = grad.reshape(-1, O).contiguous(), h.reshape(-1, H), s.reshape(-1, O), v.reshape(-1, O)
    gr, gv = torch.empty_like(s), torch.empty_like(v)
    if g.numel():
        run("sigmoid_gate_backward", s, v, g, gr, gv)
    gh = gv.mm(wv)  # MmBackward's two products, in its layouts (mm_mat1_backward, mm_mat2_backward)
    gwv = gv.t().mm(h)
    if gh.numel():
        run("relu_square_backward_from_y", h, gh, gh)  # in place: dL/dh is not needed again
    gwk, gxk = gh.t().mm(xk2), gh.mm(wk)
    gwr, gxr = gr.t().mm(xr2), gr.mm(wr)
    return gxk.view(xk.shape), gxr.view(xr.shape), gwk, gwr, gwv


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::srffn", "cpu", fused_srffn)
torch.library.impl("spikeattn::srffn_backward", "cpu", fused_srffn_backward)
