"""Fixed-point plan (Loihi-style) for every node: integer weights and neuron constants, and the
unit (the real value of one integer step) of every node's output.

- weights: 8-bit signed mantissas with one power-of-two exponent per layer (as Loihi's
  ``weight_exp``); biases in the unit of the layer's current;
- neurons: 12-bit decays (``dv = round(4096 / tau)``), a 24-bit membrane whose unit puts the
  threshold near 2^16, the input current shifted into that unit;
- spikes, residual sums and attention counts are exact integers (unit 1, or the SSA scale);
- inputs: integers when the artifact's inputs are (spikes), else 8 bits over the input range.
"""

from __future__ import annotations

import math

import numpy as np


def _weights(w, b, in_unit):
    peak = float(np.abs(w).max()) if w.size else 0.0
    step = 2.0 ** math.ceil(math.log2(peak / 127.0)) if peak > 0 else 1.0
    w_int = np.clip(np.round(w.astype(np.float64) / step), -127, 127).astype(np.int64)
    unit = step * in_unit
    b_int = (np.round(b.astype(np.float64) / unit) if b is not None else np.zeros(w.shape[0])).astype(np.int64)
    return {"w": w_int, "b": b_int}, unit


def _neuron(a, in_unit):
    leak = {0: 0.0, 1: 1.0 / a["decay"], 2: a["decay"]}[a["mode"]]
    dv = int(round(4096 * leak))
    gain = dv / 4096 if (a["decay_input"] and a["mode"] != 0) else 1.0   # the x/tau of decay_input
    base = in_unit * gain                                                 # real value of one unit of a
    shift = math.floor(math.log2(2.0 ** 16 * base / abs(a["v_th"]))) if a["v_th"] else 0
    unit = base * 2.0 ** -shift
    vr = 0.0 if a["v_reset"] is None else a["v_reset"]
    return {"dv": dv, "shift": shift, "vth": int(round(a["v_th"] / unit)), "vr": int(round(vr / unit)),
            "soft": a["v_reset"] is None}


def plan(graph: dict, weights: dict) -> dict:
    """``{node name: {"unit": float, "quant": dict}}`` for every node, in graph order."""
    out = {}
    for node in graph["nodes"]:
        op, a, name = node["op"], node.get("attrs", {}), node["name"]
        ins = [out[i]["unit"] for i in node["inputs"]]
        w = {k: weights[v] for k, v in node.get("params", {}).items()}
        q, unit = {}, ins[0] if ins else float(graph["input_unit"])
        if op in ("linear", "conv2d"):
            q, unit = _weights(w["weight"], w.get("bias"), ins[0])
        elif op == "lif":
            q, unit = _neuron(a, ins[0]), 1.0
        elif op == "ssa":
            unit = ins[0] ** 3 * a["scale"]
        elif op in ("sdsa_kv", "sdsa_mask"):
            unit = ins[0] * ins[-1]
        elif op == "avgpool2d":
            unit = ins[0] / (a["kernel"][0] * a["kernel"][1])
        elif op == "add":
            if not math.isclose(ins[0], ins[1]):
                raise ValueError(f"node {name!r}: fixed point adds values of different units {ins}")
        elif op == "readout":
            q, unit = {"in_unit": ins[0], "out_unit": 2.0 ** -20}, 2.0 ** -20
        out[name] = {"unit": unit, "quant": q}
    return out
