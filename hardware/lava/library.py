"""Lava's own processes for a library pair (``quantize.library_pairs``): ``lava.proc.dense.Dense`` or
``lava.proc.conv.Conv`` into ``lava.proc.lif.LIF``, run by their fixed-point (bit-accurate) models.

Layouts: our ports carry ``(1, *per-sample shape)`` (one sample per run: Lava's Dense and Conv have
no batch axis); Lava's Conv works on ``(X, Y, C)`` = ``(W, H, C)`` and *convolves* (it flips the
kernel, ``lava/proc/conv/utils.py``), so our correlation weights ``(O, C, kh, kw)`` go in as
``(O, kw, kh, C)`` flipped. A token-wise Linear on ``[N, C]`` is a 1x1 Conv over ``(X=N, Y=1, C)``.
Each weight matrix is split into its excitatory and inhibitory group (8-bit magnitudes each).
Reshapes and transposes between the layouts are Lava's virtual ports: they add no time step.
"""

from __future__ import annotations

import numpy as np
from lava.proc.conv.process import Conv
from lava.proc.dense.process import Dense
from lava.proc.lif.process import LIF
from lava.utils.weightutils import SignMode

GRADED_BITS = 24     # spike counts (residual sums, pooled sums) travel as graded spikes


def _groups(w: np.ndarray) -> list[tuple[np.ndarray, SignMode]]:
    """The non-empty excitatory (w > 0) and inhibitory (w < 0) parts of an integer weight array."""
    parts = [(np.where(w > 0, w, 0), SignMode.EXCITATORY), (np.where(w < 0, w, 0), SignMode.INHIBITORY)]
    return [(p.astype(np.int32), mode) for p, mode in parts if p.any()] or [(np.zeros_like(w, np.int32), SignMode.EXCITATORY)]


class Pair:
    """The Lava processes of one pair. ``connect_input(port)`` wires our source port in;
    ``output_port()`` is the LIF's spikes in our layout; ``set_bias()`` turns the bias on."""

    def __init__(self, syn: dict, in_shape, quant: dict, neuron: dict, binary: bool):
        self.syn, self.in_shape, self.neuron = syn, tuple(in_shape), neuron
        bits = 0 if binary else GRADED_BITS
        w, out = quant["w"], tuple(syn["shape"])
        if syn["op"] == "linear" and len(out) == 1:
            self.kind, lif_shape = "dense", out
            self.conns = [Dense(weights=p, sign_mode=mode, num_message_bits=bits, num_weight_bits=8, weight_exp=0)
                          for p, mode in _groups(w)]
        else:
            if syn["op"] == "linear":        # tokens [..., C] -> (X = tokens, Y = 1, C)
                self.kind, n = "tokens", int(np.prod(self.in_shape[:-1]))
                lava_in, kernel = (n, 1, self.in_shape[-1]), w.reshape(w.shape[0], 1, 1, w.shape[1])
                stride, pad, lif_shape = (1, 1), (0, 0), (n, 1, w.shape[0])
            else:
                self.kind, (c, h, wd) = "conv", self.in_shape
                a = syn["attrs"]
                lava_in, kernel = (wd, h, c), w.transpose(0, 3, 2, 1)[:, ::-1, ::-1]   # (O, kw, kh, C), flipped
                stride, pad = tuple(a["stride"][::-1]), tuple(a["padding"][::-1])
                lif_shape = (out[2], out[1], out[0])
            self.conns = [Conv(weight=np.ascontiguousarray(p), input_shape=lava_in, stride=stride, padding=pad,
                               num_message_bits=bits, num_weight_bits=8) for p, _ in _groups(kernel)]
        zeros = np.zeros(lif_shape, np.int32)
        self.lif = LIF(shape=lif_shape, du=4095, dv=int(neuron["dv"]), vth=int(neuron["lava_vth"]),
                       bias_mant=zeros, bias_exp=zeros, u=0, v=0)
        for conn in self.conns:
            conn.a_out.connect(self.lif.a_in)

    def _to_lava(self, x: np.ndarray) -> np.ndarray:
        """A per-neuron array in our per-sample layout -> the LIF's layout."""
        x = np.broadcast_to(x, self.syn["shape"])
        if self.kind == "conv":
            return np.ascontiguousarray(x.transpose(2, 1, 0))
        return np.ascontiguousarray(x).reshape(self.lif.a_in.shape)

    def connect_input(self, port) -> None:
        for conn in self.conns:
            if self.kind == "dense":
                port.reshape((self.in_shape[-1],)).connect(conn.s_in)
            elif self.kind == "tokens":
                port.reshape(conn.s_in.shape).connect(conn.s_in)
            else:
                port.reshape(self.in_shape).transpose((2, 1, 0)).connect(conn.s_in)

    def output_port(self):
        out = (1, *self.syn["shape"])
        if self.kind == "conv":
            return self.lif.s_out.transpose((2, 1, 0)).reshape(out)
        return self.lif.s_out.reshape(out)

    @property
    def has_bias(self) -> bool:
        return bool(np.any(self.neuron["bias_mant"]))

    def set_bias(self) -> None:
        self.lif.bias_mant.set(self._to_lava(self.neuron["bias_mant"]).astype(np.int32))
        self.lif.bias_exp.set(self._to_lava(self.neuron["bias_exp"]).astype(np.int32))
