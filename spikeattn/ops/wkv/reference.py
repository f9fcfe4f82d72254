"""WKV as a plain torch loop over tokens: the spec and the oracle for every fast path.

``wkv_step`` is one token of the recurrence (also the recurrent mode of SpikeGPT); ``naive_wkv`` runs it
over a sequence; ``dense_wkv`` is the equation itself, written out as a [T, T] weighted average.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeattn.ops._dtypes import state_dtype

MIN_EXPONENT = -1e38  # "minus infinity" that stays finite, so p - w never makes NaN


class WKVState(NamedTuple):
    """Running sums of one (batch, channel) grid, each ``[B, C]`` in the state dtype.

    The true sums are ``a * e^p`` (numerator) and ``b * e^p`` (denominator); ``p`` is the largest
    exponent seen so far, so ``a`` and ``b`` never overflow.
    """

    a: torch.Tensor
    b: torch.Tensor
    p: torch.Tensor

    @staticmethod
    def zeros(shape, dtype=torch.float32, device=None) -> "WKVState":
        z = torch.zeros(shape, dtype=dtype, device=device)
        return WKVState(z, z.clone(), torch.full(shape, MIN_EXPONENT, dtype=dtype, device=device))




def _rescale(x: torch.Tensor, y: torch.Tensor):
    """(e^{x-m}, e^{y-m}, m) with m = max(x, y): both exponents are <= 0."""
    m = torch.maximum(x, y)
    return torch.exp(x - m), torch.exp(y - m), m


def wkv_step(w, u, k, v, state: WKVState) -> tuple[torch.Tensor, WKVState]:
    r"""One token: ``k, v [B, C]`` (state dtype), ``w, u [C]`` -> ``(WKV_t [B, C], state after t)``.

    .. math::
        \mathrm{WKV}_t = \frac{a\,e^{p} + e^{u+k_t} v_t}{b\,e^{p} + e^{u+k_t}},\qquad
        (a, b)\,e^{p} \leftarrow e^{-w} (a, b)\,e^{p} + e^{k_t} (v_t, 1)
    """
    a, b, p = state
    e1, e2, _ = _rescale(p, u + k)
    y = (e1 * a + e2 * v) / (e1 * b + e2)
    e1, e2, q = _rescale(p - w, k)
    return y, WKVState(e1 * a + e2 * v, e1 * b + e2, q)


def naive_wkv(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``wkv_step`` over ``k, v [B, T, C]`` from the empty state; returns ``[B, T, C]`` in k's dtype.

    Accumulates in fp32 (fp64 for fp64 input); gradients come from autograd through the loop.
    """
    sd = state_dtype(k.dtype)
    w, u, kf, vf = w.to(sd), u.to(sd), k.to(sd), v.to(sd)
    state = WKVState.zeros((k.shape[0], k.shape[2]), sd, k.device)
    out = []
    for t in range(k.shape[1]):
        y, state = wkv_step(w, u, kf[:, t], vf[:, t], state)
        out.append(y)
    return torch.stack(out, dim=1).to(k.dtype)


def dense_wkv(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""The defining equation, O(T^2) memory, in fp64 (for tests):

    .. math::
        \mathrm{WKV}_t = \frac{\sum_{i<t} e^{-(t-1-i)w + k_i} v_i + e^{u+k_t} v_t}
                              {\sum_{i<t} e^{-(t-1-i)w + k_i} + e^{u+k_t}}
    """
    w, u, k, v = (x.double() for x in (w, u, k, v))
    T = k.shape[1]
    t = torch.arange(T, dtype=torch.float64, device=k.device)
    lag = (t[:, None] - 1 - t[None, :])  # (T, T): t - 1 - i
    past = lag >= 0
    # exponent[b, t, i, c] of the weight of token i in WKV_t
    expo = -lag[None, :, :, None].clamp(min=0) * w + k[:, None, :, :]
    expo = torch.where(past[None, :, :, None], expo, float("-inf"))
    diag = torch.eye(T, dtype=torch.bool, device=k.device)[None, :, :, None]
    expo = torch.where(diag, u + k[:, None, :, :], expo)
    weights = torch.softmax(expo, dim=2)  # (B, T, T, C): a convex combination of the v_i
    return (weights * v[:, None, :, :]).sum(dim=2)
