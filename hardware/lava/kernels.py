"""What each graph node computes per time step, in floating point (exact, ``ops_float``) or in
a Loihi-style fixed point (integers; the units come from ``quantize.py``).

``make_kernel(spec, mode)`` returns a callable ``kernel(*inputs) -> output`` over batched arrays
with a ``delay`` attribute (1 for synapse-like nodes, 0 otherwise). Kernels of neurons keep
their membrane between calls; a fresh kernel is built for every run.
"""

from __future__ import annotations

import numpy as np

import ops_float as F

KNOWN_OPS = ("linear", "conv2d", "maxpool2d", "avgpool2d", "reshape", "ssa", "merge_heads", "to_tokens",
             "sdsa_kv", "sdsa_mask", "add", "readout", "lif")
SYNAPSES = ("linear", "conv2d", "ssa", "sdsa_kv", "readout")  # one step of delay each, as Lava Dense/Conv


class Kernel:
    def __init__(self, fn, delay):
        self.fn, self.delay = fn, delay

    def __call__(self, *xs):
        return self.fn(*xs)


class FloatLIF:
    """The float32 neuron of ``ops_float.lif_step``; membrane starts at ``v_reset`` (0 for soft reset)."""

    delay = 0

    def __init__(self, attrs):
        self.attrs, self.v = attrs, None

    def __call__(self, x):
        if self.v is None:
            self.v = np.full(x.shape, 0.0 if self.attrs["v_reset"] is None else self.attrs["v_reset"], np.float32)
        spike, self.v = F.lif_step(x, self.v, self.attrs)
        return spike


def _float_fn(op, a, w):
    table = {
        "linear": lambda x: F.linear(x, w["weight"], w.get("bias")),
        "conv2d": lambda x: F.conv2d(x, w["weight"], w.get("bias"), a["stride"], a["padding"]),
        "maxpool2d": lambda x: F.maxpool2d(x, a["kernel"], a["stride"], a["padding"]),
        "avgpool2d": lambda x: F.avgpool2d(x, a["kernel"], a["stride"], a["padding"]),
        "reshape": lambda x: np.ascontiguousarray(x).reshape(x.shape[0], *a["shape"]),
        "ssa": lambda x: F.ssa(x, a["heads"], a["scale"]),
        "merge_heads": F.merge_heads,
        "to_tokens": F.to_tokens,
        "sdsa_kv": F.sdsa_kv,
        "sdsa_mask": F.sdsa_mask,
        "add": lambda x, y: (x + y).astype(np.float32),
        "readout": lambda x: F.readout(x, w["weight"], w.get("bias")),
    }
    return table[op]


# ----------------------------------------------------------------------------- fixed point
def _shift_round(x, s):
    """``x * 2**s`` for integer ``s`` (a scalar or an array broadcasting over ``x``), rounding
    half away from zero when shifting right."""
    s = np.asarray(s, np.int64)
    left = np.left_shift(x, np.maximum(s, 0))
    r = np.maximum(-s, 0)
    half = np.where(r > 0, np.left_shift(1, np.maximum(r - 1, 0)), 0)
    right = np.sign(x) * np.right_shift(np.abs(x) + half, r)
    return np.where(s >= 0, left, right)


def wrap24(x):
    """Lava's 24-bit current (``lava.proc.lif.models``, fixed point): values past +-2^23 wrap around."""
    m = 1 << 23
    y = np.where(x > m, x - 2 * m, x)
    return np.where(y <= -m, x + 2 * m, y)


class FixedLIF:
    """Loihi-style integer neuron: 12-bit decay, 24-bit membrane, integer threshold and bias.

    With ``u`` the neuron's unit (``quantize.py``; per channel where the weights are):
    ``v <- vr + decay(v - vr) + (a << s) + bias``, ``decay(z) = sign(z) (|z| (4096 - dv) >> 12)``,
    spike when ``v >= vth``; hard reset to ``vr`` or soft reset ``v -= vth``; ``v`` saturates at
    +-2^23. ``s``, ``vth``, ``vr`` and ``bias`` broadcast over the per-sample shape. With
    ``q["wrap"]`` (library pairs) ``a << s`` wraps at 24 bits as Lava's current ``u`` does.
    """

    delay = 0
    LIMIT = (1 << 23) - 1

    def __init__(self, q):
        self.q, self.v = q, None
        self.vth, self.vr, self.bias = (np.asarray(q[k], np.int64) for k in ("vth", "vr", "bias"))

    def __call__(self, a):
        q = self.q
        if self.v is None:
            self.v = np.broadcast_to(self.vr, a.shape).astype(np.int64)
        z = self.v - self.vr
        decayed = np.sign(z) * ((np.abs(z) * (4096 - q["dv"])) >> 12)
        x = _shift_round(a.astype(np.int64), q["shift"])
        if q.get("wrap"):
            x = wrap24(x)
        h = self.vr + decayed + x + self.bias
        h = np.clip(h, -self.LIMIT, self.LIMIT)
        spike = h >= self.vth
        self.v = np.where(spike, h - self.vth if q["soft"] else self.vr, h)
        return spike.astype(np.int64)


def _int_windows(x, k, stride, pad, fill):
    (ph, pw), (sh, sw) = pad, stride
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return np.lib.stride_tricks.sliding_window_view(x, tuple(k), axis=(2, 3))[:, :, ::sh, ::sw]


def _fixed_fn(op, a, w, q):
    def ssa(x):
        b, n, c3 = x.shape
        c = c3 // 3
        qh, kh, vh = (x[..., i * c:(i + 1) * c].reshape(b, n, a["heads"], -1).transpose(0, 2, 1, 3) for i in range(3))
        return qh @ (kh.transpose(0, 1, 3, 2) @ vh)                            # integer counts (B, H, N, d)

    def readout(x):  # the classifier head runs off-chip, in float, on the dequantised spike counts
        y = F.readout((x * q["in_unit"]).astype(np.float32), w["weight"], w.get("bias"))
        return np.round(y.astype(np.float64) / q["out_unit"]).astype(np.int64)

    table = {
        "linear": lambda x: x @ q["w"].T + q["b"],
        "conv2d": lambda x: np.einsum("bchwij,ocij->bohw", _int_windows(x, q["w"].shape[2:], a["stride"], a["padding"], 0),
                                      q["w"], optimize=True) + q["b"][None, :, None, None],
        "maxpool2d": lambda x: _int_windows(x, a["kernel"], a["stride"], a["padding"], np.iinfo(np.int64).min).max(axis=(-2, -1)),
        "avgpool2d": lambda x: _int_windows(x, a["kernel"], a["stride"], a["padding"], 0).sum(axis=(-2, -1)),
        "reshape": lambda x: np.ascontiguousarray(x).reshape(x.shape[0], *a["shape"]),
        "ssa": ssa,
        "merge_heads": F.merge_heads,
        "to_tokens": F.to_tokens,
        "sdsa_kv": lambda x: (x[..., x.shape[-1] // 3: 2 * x.shape[-1] // 3] * x[..., 2 * x.shape[-1] // 3:]).sum(1, keepdims=True),
        "sdsa_mask": lambda x, kv: x[..., : x.shape[-1] // 3] * kv,
        "add": lambda x, y: x + y,
        "readout": readout,
    }
    return table[op]


def make_kernel(spec, mode):
    op, a, w = spec["op"], spec["attrs"], spec["weights"]
    delay = 1 if op in SYNAPSES else 0
    if op == "lif":
        return FloatLIF(a) if mode == "float" else FixedLIF(spec["quant"])
    fn = _float_fn(op, a, w) if mode == "float" else _fixed_fn(op, a, w, spec["quant"])
    return Kernel(fn, delay)
