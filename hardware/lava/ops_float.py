"""Floating-point node maths of the runtime (numpy only): the same arithmetic as the torch model the
exporter reads (BN folded by ``spikeattn.export.graph.fold_batchnorm``) and ``spikeattn.functional.neuron``,
operation for operation.

Conventions shared with the exporter (the artifact's contract):
- values are float32 between nodes; per-sample shapes, a leading batch axis ``B``;
- synaptic sums (linear, conv, readout) accumulate in float64 and round once to float32: with
  spike (small integer) or 8-bit-pixel inputs the float64 sum is exact, so the result does not
  depend on the summation order, and torch and numpy agree bit for bit;
- neurons run in float32 in the order of ``spikeattn/functional/neuron.py`` (charge, fire with
  ``h - v_th >= 0``, reset), so spikes are identical, not merely close.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def linear(x, w, b):
    """``x [B, ..., in] -> [B, ..., out]``: ``fp32(x @ W^T + b)`` accumulated in float64."""
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if b is not None:
        y = y + b.astype(np.float64)
    return y.astype(F32)


def _windows(x, k, stride, pad, fill):
    """``x [B, C, H, W] -> [B, C, Ho, Wo, kh, kw]`` strided views of the padded input."""
    (ph, pw), (sh, sw) = pad, stride
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(x, tuple(k), axis=(2, 3))
    return win[:, :, ::sh, ::sw]


def conv2d(x, w, b, stride, padding):
    """``x [B, C, H, W] -> [B, O, Ho, Wo]`` (groups 1, dilation 1), accumulated in float64."""
    win = _windows(x.astype(np.float64), w.shape[2:], stride, padding, 0.0)   # (B, C, Ho, Wo, kh, kw)
    y = np.einsum("bchwij,ocij->bohw", win, w.astype(np.float64), optimize=True)
    if b is not None:
        y = y + b.astype(np.float64)[None, :, None, None]
    return y.astype(F32)


def maxpool2d(x, kernel, stride, padding):
    return _windows(x, kernel, stride, padding, -np.inf).max(axis=(-2, -1)).astype(F32)


def avgpool2d(x, kernel, stride, padding):
    # torch (count_include_pad=True): the window sum divided by kh*kw, one float32 division.
    s = _windows(x.astype(np.float64), kernel, stride, padding, 0.0).sum(axis=(-2, -1)).astype(F32)
    return s / F32(kernel[0] * kernel[1])


def ssa(qkv, heads, scale):
    """Spikformer attention: ``qkv [B, N, 3C]`` spikes -> ``[B, H, N, d]`` = ``(Q K^T V) * scale``.

    Counts are integers (exact in float64), times the scale in float32 as torch does.
    """
    b, n, c3 = qkv.shape
    c = c3 // 3
    q, k, v = (qkv[..., i * c:(i + 1) * c].reshape(b, n, heads, c // heads).transpose(0, 2, 1, 3)
               .astype(np.float64) for i in range(3))                       # 3 x (B, H, N, d)
    counts = q @ (k.transpose(0, 1, 3, 2) @ v)                                # (B, H, N, d)
    return counts.astype(F32) * F32(scale)


def merge_heads(x):
    """``[B, H, N, d] -> [B, N, H*d]``."""
    b, h, n, d = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(b, n, h * d)


def to_tokens(x):
    """``[B, C, H, W] -> [B, H*W, C]`` (SPS output)."""
    b, c = x.shape[:2]
    return np.ascontiguousarray(x.reshape(b, c, -1).transpose(0, 2, 1))


def sdsa_kv(qkv):
    """Spike-driven attention: ``qkv [B, N, 3C] -> [B, 1, C]`` = ``sum_n K * V``."""
    c = qkv.shape[-1] // 3
    kv = qkv[..., c:2 * c].astype(np.float64) * qkv[..., 2 * c:]
    return kv.sum(axis=1, keepdims=True).astype(F32)


def sdsa_mask(qkv, kv):
    """``Q * kv``: ``[B, N, 3C], [B, 1, C] -> [B, N, C]``."""
    c = qkv.shape[-1] // 3
    return (qkv[..., :c] * kv).astype(F32)


def readout(x, w, b):
    """Classifier head on tokens ``[B, N, C]`` (mean over N, float32 as torch) -> ``[B, classes]``."""
    m = x.astype(np.float64).sum(axis=1).astype(F32) / F32(x.shape[1])
    return linear(m, w, b)


def lif_step(x, v, a):
    """One neuron step, float32, as ``spikeattn.functional.neuron.lif_step``. Returns ``(spike, v)``."""
    vr = F32(0.0 if a["v_reset"] is None else a["v_reset"])
    d, vth = F32(a["decay"]), F32(a["v_th"])
    if a["mode"] == 0:                      # IF
        h = v + x
    elif a["mode"] == 1:                    # LIF: divide by tau
        h = v + (x - (v - vr)) / d if a["decay_input"] else v - (v - vr) / d + x
    else:                                   # PLIF: multiply by k = 1/tau
        h = v + (x - (v - vr)) * d if a["decay_input"] else v - (v - vr) * d + x
    spike = (h - vth) >= F32(0)
    v_new = np.where(spike, h - vth if a["v_reset"] is None else vr, h).astype(F32)
    return spike.astype(F32), v_new
