"""The time-mix core on the CPU: torch's GEMMs (the calls ``F.linear`` and autograd make, so their bits), the
WKV kernels (``spikeattn.ops.wkv.cpu``) and the sigmoid gate, with results written over buffers nobody
reads again: ``sigmoid`` over the receptance GEMM's output, and backward dL/dr over dL/d(gated) and dL/dv
over dL/dy. Autograd through the separate ops makes each of these a fresh buffer (see ``ops.srffn.cpu``).
"""

from __future__ import annotations

import torch

from spikeattn.ops import _pointwise_host
from spikeattn.ops._pointwise_host import DTYPES, run
from spikeattn.ops.wkv import cpu as wkv_cpu

__all__ = ["DTYPES", "is_available", "fused_srwkv", "fused_srwkv_backward"]


def is_available() -> bool:
    return _pointwise_host.is_available() and wkv_cpu.is_available()


def check(xk, xv, xr, w, u, wk, wv, wr, wo) -> None:
    """TypeError / ValueError unless fp32 or fp64 tensors of one dtype with the time mix's shapes."""
    tensors = {"xk": xk, "xv": xv, "xr": xr, "w": w, "u": u, "key_weight": wk, "value_weight": wv,
               "receptance_weight": wr, "output_weight": wo}
    if xk.dtype not in DTYPES or any(t.dtype != xk.dtype for t in tensors.values()):
        raise TypeError("spikeattn::srwkv runs on float32 or float64 tensors of one dtype, got "
                        + ", ".join(f"{n} {t.dtype}" for n, t in tensors.items()))
    C, A = xk.shape[-1], wk.shape[0]
    if not (xk.dim() == 3 and xv.shape == xr.shape == xk.shape and wk.shape == wv.shape == wr.shape == (A, C)
            and w.shape == u.shape == (A,) and wo.dim() == 2 and wo.shape[1] == A):
        raise ValueError("srwkv needs xk, xv, xr [B, T, C] of one shape, key/value/receptance weights [A, C], "
                         "w and u [A], output_weight [O, A], got "
                         + ", ".join(f"{n} {tuple(t.shape)}" for n, t in tensors.items()))


def fused_srwkv(xk, xv, xr, w, u, wk, wv, wr, wo):
    """``(out, k, v, y, lse, s, gated)``; see ``reference.naive_srwkv``."""
    check(xk, xv, xr, w, u, wk, wv, wr, wo)
    (B, T, C), A = xk.shape, wk.shape[0]
    k, v, r = (x.reshape(-1, C).mm(weight.t()) for x, weight in ((xk, wk), (xv, wv), (xr, wr)))  # F.linear's fold
    y, lse = wkv_cpu.fused_wkv_forward(w, u, k.view(B, T, A), v.view(B, T, A))
    s = r.sigmoid_()
    gated = s * y.view(-1, A)
    out = gated.mm(wo.t())
    return out.view(B, T, -1), k.view(B, T, A), v.view(B, T, A), y, lse, s.view(B, T, A), gated.view(B, T, A)


def fused_srwkv_backward(grad, xk, xv, xr, w, u, wk, wv, wr, wo, k, v, y, lse, s, gated):
    """``dL/d(xk, xv, xr, w, u, wk, wv, wr, wo)`` from ``dL/dout`` and the forward's saved tensors."""
    check(xk, xv, xr, w, u, wk, wv, wr, wo)
    (B, T, C), A = xk.shape, wk.shape[0]
    g = grad.reshape(-1, wo.shape[0]).contiguous()
    g_gated = g.mm(wo)  # MmBackward's two products, in its layouts (see ops.srffn.cpu)
    gwo = g.t().mm(gated.reshape(-1, A))
    gy = torch.empty_like(g_gated)
    if gy.numel():
        run("sigmoid_gate_backward", s.reshape(-1, A), y.reshape(-1, A), g_gated, g_gated, gy)  # dL/dr over g_gated
    gr = g_gated
    gw, gu, gk, gv = wkv_cpu.fused_wkv_backward(w, u, k, v, y, lse, gy.view(B, T, A), gv_over_gy=True)
    grads = []
    for x, weight, gz in ((xk, wk, gk), (xv, wv, gv), (xr, wr, gr)):
        gz = gz.reshape(-1, A)
        grads.append((gz.mm(weight).view(B, T, C), gz.t().mm(x.reshape(-1, C))))
    (gxk, gwk), (gxv, gwv), (gxr, gwr) = grads
    return gxk, gxv, gxr, gw, gu, gwk, gwv, gwr, gwo


# Registered without the decorator form, which returns None: tests call the functions directly.
torch.library.impl("spikeattn::srwkv", "cpu", fused_srwkv)
torch.library.impl("spikeattn::srwkv_backward", "cpu", fused_srwkv_backward)
