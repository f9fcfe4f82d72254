"""Fixed-point plan (Loihi-style) for every node: integer weights and neuron constants, and the
unit (the real value of one integer step) of every node's output.

Two plans (``plan(kind=...)``). ``"library"``, the default: every Linear/Conv + LIF pair that Lava's
process library can run (``library_pairs``) gets the numbers Lava's bit-accurate processes hold
(``plan_pair``, below), so the project's kernels and Lava's own processes give the same spikes and
a fixed-point figure is a statement about Loihi; the other nodes are planned as described next,
with one synapse per connection. ``"per_channel"``: every weight layer as described next, with two
synapses per connection: more accurate, but only this runtime's processes can run it.

What each number is, and why Loihi 2 can hold it:

- weights: Loihi synapses hold 8-bit weights; a mixed-sign group loses one bit to the sign, so
  every layer is split, as Loihi's sign modes intend, into an excitatory group (weights
  ``0..255``) and an inhibitory one (``-255..0``): each connection is in exactly one, and the
  mantissa is sign + 8 bits, ``[-255, 255]`` (``synapses=1``). With ``synapses=2`` each
  connection is two such synapses from the same axon into the same neuron, the high byte of
  ``|w|`` with ``weight_exp + 8`` and the low byte with ``weight_exp``, which the dendrite sums:
  sign + 16 bits, ``[-65535, 65535]`` (``split_synapses``). That doubles the synapse memory and
  nothing else (Lava: two Dense processes into one LIF ``a_in``). On the demo Spikformer (T=1:
  one flipped spike upstream flips dozens downstream) the per-channel plan keeps about 98.9% of
  the spikes with one synapse, 99.96% with two, the default plan 98.7%
  (benchmarks/results/lava_fmnist_agreement.json).
  When a linear/conv feeds one neuron layer and nothing else, every output channel ``c`` gets
  its own real scale ``s_c = max|W_c| / w_max`` (each channel uses the whole mantissa range),
  else the layer has one power-of-two step (Loihi's per-layer ``weight_exp``). A per-channel scale is
  legitimate on Loihi-class hardware because it never has to exist as a multiplier: it is folded
  into that channel's neurons. The channel's synaptic input arrives in units of ``s_c``; its
  threshold, reset value and bias are stored in that same unit (``vth_c = v_th / unit_c``), which
  is the same spike decision. On chip this is one neuron group (Lava LIF process, scalar ``vth``)
  plus one synapse group (its own ``weight_exp``) per output channel, or per-neuron thresholds
  in a Loihi 2 microcoded neuron; no arithmetic Loihi lacks.
- neurons (per channel where the weights are): 12-bit decay ``dv = round(4096 * leak)`` for the
  membrane; the input is shifted left into a 24-bit membrane whose unit puts the threshold in
  ``[2^16, 2^17)`` (a 17-bit ``vth``, as Lava's bit-accurate LIF); the threshold is rounded up,
  so ``h_int >= vth_int`` is exactly ``h >= v_th`` for the represented ``h``. The ``1/tau`` of
  ``decay_input`` is exact (folded into the unit), not the 12-bit decay. Biases move from the
  synapse into the neuron, in membrane units, as a 13-bit mantissa with a 3-bit left shift
  (Loihi's ``bias_mant``/``bias_exp``); at that resolution a bias costs no spikes.
- spikes, residual sums and attention counts are exact integers (unit 1, or the SSA scale);
- inputs: integers when the artifact's inputs are (spikes); else graded spikes of
  ``INPUT_BITS`` bits over the input range (Loihi 2 graded spikes carry up to 24 bits).

Not modelled: Lava's Dense sends 16-bit activations and Loihi's dendritic accumulators have a
finite width; the kernels sum synaptic input exactly and saturate only the 24-bit membrane.
"""

from __future__ import annotations

import math

import numpy as np

SYNAPSE_BITS = 8     # one Loihi synapse: an 8-bit weight (sign from its excitatory/inhibitory group)
VTH_BITS = 16        # the threshold of every neuron lies in [2^16, 2^17): 17 bits
BIAS_MANT, BIAS_EXP = 4095, 7   # 13-bit signed bias mantissa, 3-bit exponent
INPUT_BITS = 16      # graded input spikes: 15 bits of magnitude over the export's input range


def channel_axis(op: str, shape: list) -> int:
    """Axis of the output channel in a node's per-sample shape (conv: ``[O, H, W]``, linear: last)."""
    return 0 if op == "conv2d" else len(shape) - 1


def _per_channel(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """``values [O]`` reshaped to broadcast along ``axis`` of a per-sample shape of ``ndim`` axes."""
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def w_max(synapses: int) -> int:
    """Largest mantissa magnitude of ``synapses`` 8-bit synapses per connection (255 or 65535)."""
    if synapses not in (1, 2):
        raise ValueError(f"synapses must be 1 or 2, got {synapses!r}")
    return 2 ** (SYNAPSE_BITS * synapses) - 1


def quantize_weights(w: np.ndarray, per_channel: bool, synapses: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(w_int, step [O])`` with ``w ~= w_int * step`` along the output axis 0; ``|w_int| <= w_max``.

    ``per_channel``: a real step per output channel (folded into the neurons, see the module
    docstring); else one power-of-two step for the layer. Within the range (always, per
    channel) the error is at most ``step / 2``.
    """
    top_int = w_max(synapses)
    w = w.astype(np.float64)
    peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) if w.size else np.zeros(w.shape[0])
    if per_channel:
        step = np.where(peak > 0, peak / top_int, 1.0)
    else:
        top = float(peak.max()) if peak.size else 0.0
        step = np.full(w.shape[0], 2.0 ** math.ceil(math.log2(top / top_int)) if top > 0 else 1.0)
    w_int = np.clip(np.round(w / step.reshape(-1, *[1] * (w.ndim - 1))), -top_int, top_int)
    return w_int.astype(np.int64), step


def split_synapses(w_int: np.ndarray, synapses: int) -> list[tuple[np.ndarray, int]]:
    """The Loihi synapses of a mantissa: ``[(part, extra exponent), ...]`` with ``sum(part << e) == w_int``.

    Every part has magnitudes ``<= 255`` and the sign of ``w_int`` (or 0): its positive entries
    are synapses of the excitatory group, its negative ones of the inhibitory group, 8-bit
    unsigned weights each. One synapse: ``[(w_int, 0)]``; two: the high byte of ``|w_int|`` at
    exponent 8 and the low byte at 0.
    """
    top = w_max(synapses)
    if w_int.size and np.abs(w_int).max() > top:
        raise ValueError(f"w_int must lie in [{-top}, {top}] for {synapses} synapse(s)")
    if synapses == 1:
        return [(w_int, 0)]
    sign, mag = np.sign(w_int), np.abs(w_int)
    return [(sign * (mag >> SYNAPSE_BITS), SYNAPSE_BITS), (sign * (mag & 0xFF), 0)]


def quantize_bias(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mant, exp)`` with ``b ~= mant << exp``, ``|mant| <= 4095``, ``0 <= exp <= 7`` (Loihi bias)."""
    b = np.asarray(b, np.float64)
    exp = np.zeros(b.shape, np.int64)
    big = np.abs(b) > BIAS_MANT
    exp[big] = np.minimum(np.ceil(np.log2(np.abs(b[big]) / BIAS_MANT)), BIAS_EXP)
    mant = np.clip(np.round(b / 2.0 ** exp), -BIAS_MANT - 1, BIAS_MANT)
    return mant.astype(np.int64), exp


def _weights(node, w, in_unit, fold, synapses):
    """Synapse plan: per-channel when ``fold`` (its only consumer is one neuron layer).

    ``w`` holds the whole mantissa: the dendrite's sum over the synapse groups of
    ``split_synapses`` is the same integer.
    """
    w_int, step = quantize_weights(w["weight"], per_channel=fold, synapses=synapses)
    ax, nd = channel_axis(node["op"], node["shape"]), len(node["shape"])
    unit = _per_channel(step * in_unit, ax, nd) if fold else float(step[0] * in_unit)
    b = w.get("bias")
    if fold:   # the bias becomes the neuron's (in membrane units, set by _neuron)
        return {"w": w_int, "b": np.zeros(w_int.shape[0], np.int64),
                "bias_real": None if b is None else _per_channel(b.astype(np.float64), ax, nd)}, unit
    b_int = np.round(b.astype(np.float64) / unit) if b is not None else np.zeros(w_int.shape[0])
    return {"w": w_int, "b": b_int.astype(np.int64)}, unit


def _neuron(a, in_unit, bias_real):
    leak = {0: 0.0, 1: 1.0 / a["decay"], 2: a["decay"]}[a["mode"]]
    dv = int(round(4096 * leak))
    gain = leak if (a["decay_input"] and a["mode"] != 0) else 1.0     # the x/tau of decay_input, exact
    base = np.asarray(in_unit, np.float64) * gain                      # real value of one unit of a
    if not a["v_th"]:
        raise ValueError("fixed point needs a nonzero v_th")
    shift = np.ceil(np.log2(2.0 ** VTH_BITS * base / abs(a["v_th"]))).astype(np.int64)
    if bias_real is not None:   # a coarser membrane where a bias would overflow 13 + 7 bits
        over = np.abs(bias_real) * gain / (base * 2.0 ** -shift) / (BIAS_MANT << BIAS_EXP)
        shift = shift - np.ceil(np.log2(np.maximum(over, 1.0))).astype(np.int64)
    unit = base * 2.0 ** -shift
    vr = 0.0 if a["v_reset"] is None else a["v_reset"]
    # Round the threshold up: h_int >= ceil(v_th / unit) <=> h_int * unit >= v_th (tolerance for
    # a quotient that is an integer up to rounding).
    vth = np.ceil(a["v_th"] / unit - 1e-9).astype(np.int64)
    q = {"dv": dv, "shift": shift, "vth": vth, "vr": np.round(vr / unit).astype(np.int64),
         "soft": a["v_reset"] is None, "bias": np.zeros((), np.int64)}
    if bias_real is not None:
        mant, exp = quantize_bias(bias_real * gain / unit)
        q["bias"] = mant << exp
    return q


def _consumers(graph: dict) -> dict:
    """``{node name: [the nodes that read it]}``."""
    out = {n["name"]: [] for n in graph["nodes"]}
    for n in graph["nodes"]:
        for i in n["inputs"]:
            out[i].append(n)
    return out


PLANS = ("library", "per_channel")            # the default first
PLAN_SYNAPSES = {"library": 1, "per_channel": 2}   # 8-bit synapses per connection unless asked otherwise


def plan(graph: dict, weights: dict, kind: str = "library", synapses: int | None = None) -> dict:
    """``{node name: {"unit": float or array, "quant": dict}}`` for every node, in graph order.

    ``kind``: ``"library"`` (the default): every library pair (``library_pairs``) takes the plan
    Lava's own processes hold, bit for bit (``plan_pair``), so a run on Lava's processes and one
    on this runtime's give the same spikes; ``"per_channel"``: every linear/conv feeding a neuron
    layer alone gets per-output-channel scales folded into per-channel thresholds (more accurate;
    Lava's LIF, with one ``vth`` per process, cannot hold it). The nodes that are not library
    pairs are planned alike in both: per-channel where a neuron layer absorbs the scales.
    ``synapses``: 8-bit synapses per connection of every weight layer that is not a library pair
    (1 or 2, see the module docstring; ``None``: ``PLAN_SYNAPSES[kind]``); a library pair has one.

    A unit is an array (broadcasting over the node's per-sample shape) only for a per-channel
    synapse and the neuron layer it feeds; every other node has a scalar unit.
    """
    if kind not in PLANS:
        raise ValueError(f"plan must be one of {PLANS}, got {kind!r}")
    synapses = PLAN_SYNAPSES[kind] if synapses is None else synapses
    w_max(synapses)   # validates it
    users = _consumers(graph)
    pairs = library_pairs(graph) if kind == "library" else {}
    lif_quant = {}     # library neuron plans, set with their synapse
    out = {}
    for node in graph["nodes"]:
        op, a, name = node["op"], node.get("attrs", {}), node["name"]
        ins = [out[i]["unit"] for i in node["inputs"]]
        w = {k: weights[v] for k, v in node.get("params", {}).items()}
        q, unit = {}, ins[0] if ins else float(graph["input_unit"])
        if op == "input" and float(graph["input_unit"]) != 1.0:   # not spikes: graded input
            unit = float(graph["input_unit"]) * 127.0 / (2 ** (INPUT_BITS - 1) - 1)
        if name in pairs:
            q, unit, lif_quant[pairs[name]] = plan_pair(node, users[name][0], w, ins[0])
        elif name in lif_quant:
            q, unit = lif_quant[name], 1.0
        elif op in ("linear", "conv2d"):
            fold = [u["op"] for u in users[name]] == ["lif"]
            q, unit = _weights(node, w, ins[0], fold, synapses)
        elif op == "lif":
            src = out[node["inputs"][0]]["quant"]
            q, unit = _neuron(a, ins[0], src.pop("bias_real", None) if src else None), 1.0
        elif op == "ssa":
            unit = ins[0] ** 3 * a["scale"]
        elif op in ("sdsa_kv", "sdsa_mask"):
            unit = ins[0] * ins[-1]
        elif op == "avgpool2d":
            unit = ins[0] / (a["kernel"][0] * a["kernel"][1])
        elif op == "add":
            if not np.allclose(ins[0], ins[1]):
                raise ValueError(f"node {name!r}: fixed point adds values of different units {ins}")
        elif op == "readout":
            q, unit = {"in_unit": ins[0], "out_unit": 2.0 ** -20}, 2.0 ** -20
        if op not in ("linear", "conv2d", "lif") and np.ndim(unit):
            raise ValueError(f"node {name!r} ({op}) reads a per-channel unit; only a neuron may")
        out[name] = {"unit": unit, "quant": q}
    return out


# ----------------------------------------------------------------------------- Lava library pairs
# Which graph nodes Lava's own process library can run, and their fixed-point plan (numpy only).
#
# A *library pair* is a ``linear`` or ``conv2d`` node whose only consumer is a ``lif`` node that
# Lava's ``LIF`` can be: hard reset to 0, a 12-bit decay below 4096, ``v_th > 0``, and integer
# input (spikes or spike counts; a graded real input would need a 16-bit input times 8-bit weights,
# more than Lava's 17-bit threshold can span). It runs as ``lava.proc.dense.Dense`` (one-token
# linear) or ``lava.proc.conv.Conv`` (convolution; token-wise linear as a 1x1 conv over tokens)
# into ``lava.proc.lif.LIF``, under ``Loihi2SimCfg(select_tag="fixed_pt")``: Lava's bit-accurate
# Loihi models. Everything else stays a custom process of this runtime.
#
# The plan of a pair (the default plan, ``plan(kind="library")``) is the one Lava can hold, bit for bit,
# so that a run on Lava's processes and one on this runtime's give the same spikes:
#
# - one real weight step per layer, folded into the layer's one threshold (Lava's LIF has one ``vth``
#   for the whole process, so per-channel steps folded into per-channel thresholds cannot be
#   expressed); it is chosen so ``v_th`` is a whole number ``k`` of steps (``plan_pair``); weights
#   as one 8-bit synapse in an excitatory and an inhibitory group (two processes, ``|w| <= 255``;
#   Lava's Conv model ignores ``weight_exp``, so the two-synapse high/low split has no library form);
# - the synaptic input enters the membrane shifted left by Lava's fixed 6 bits (``act_shift``) and
#   wraps at 24 bits as Lava's current ``u`` does (``du = 4095``: ``u`` holds only this step's input);
# - Lava fires on ``v > vth << 6``: our ``h >= vth_int`` is the same decision for
#   ``vth_int = 64 * vth + 1`` (with ``vth = k``: ``v_th`` plus 1/64 of a weight step);
# - biases are Lava's 13-bit mantissa and 3-bit exponent, in membrane units.

ACT_SHIFT = 6            # Lava / Loihi: synaptic input and threshold are MSB-aligned by 6 bits
VTH_MAX = 2 ** 17 - 1    # Lava's LIF vth: unsigned 17 bits
W_MAX = 255              # one 8-bit synapse (sign from its E/I group)
LEAK = {0: lambda a: 0.0, 1: lambda a: 1.0 / a["decay"], 2: lambda a: a["decay"]}


def _dv(attrs: dict) -> int:
    return int(round(4096 * LEAK[attrs["mode"]](attrs)))


def lif_why(attrs: dict) -> str | None:
    """Why Lava's LIF process cannot be this neuron (None if it can)."""
    if attrs["v_reset"] is None:
        return "soft reset"
    if attrs["v_reset"] != 0.0:
        return f"v_reset={attrs['v_reset']} (Lava's LIF resets to 0)"
    if _dv(attrs) > 4095:
        return "decay of 4096/4096 (Lava's 12-bit dv stops at 4095)"
    if attrs["v_th"] <= 0:
        return "v_th <= 0 (Lava's vth is unsigned)"
    return None


def library_pairs(graph: dict) -> dict[str, str]:
    """``{synapse node: lif node}`` of every pair Lava's library runs (see the module docstring)."""
    users = _consumers(graph)
    nodes = {n["name"]: n for n in graph["nodes"]}
    graded = float(graph.get("input_unit", 1.0)) != 1.0
    pairs = {}
    for n in graph["nodes"]:
        if n["op"] not in ("linear", "conv2d") or len(users[n["name"]]) != 1:
            continue
        lif = users[n["name"]][0]
        if lif["op"] != "lif" or lif_why(lif["attrs"]) is not None:
            continue
        src = n["inputs"][0]
        while nodes[src]["op"] in ("reshape", "to_tokens", "merge_heads", "maxpool2d", "avgpool2d"):
            src = nodes[src]["inputs"][0]
        if graded and nodes[src]["op"] == "input":
            continue
        pairs[n["name"]] = lif["name"]
    return pairs


def plan_pair(syn: dict, lif: dict, w: dict, in_unit: float) -> tuple[dict, float, dict]:
    """``(synapse quant, synapse unit, neuron quant)`` of a library pair (Lava-exact, see above)."""
    if np.ndim(in_unit):
        raise ValueError(f"node {syn['name']!r}: a library pair needs a scalar input unit")
    a = lif["attrs"]
    leak = LEAK[a["mode"]](a)
    gain = leak if (a["decay_input"] and a["mode"] != 0) else 1.0
    peak = float(np.abs(w["weight"]).max()) if w["weight"].size else 0.0
    # The layer's one weight step is a real number that never exists on chip: it is folded into
    # Lava's one integer vth. Choose it so the threshold is a whole number k of steps (Lava's
    # a_in and vth share the << 6 grid, so then Lava fires at v_th to 1/64 of a step), with the
    # finest such step whose weights fit 8 bits and whose k fits Lava's 17-bit vth (a threshold
    # below one step of the largest weight keeps that step, rounded up to Lava's grid below).
    finest = in_unit * gain * (peak / W_MAX if peak > 0 else 1.0)     # one step's charge, at least
    k = min(math.floor(a["v_th"] / finest + 1e-9), VTH_MAX)
    step = a["v_th"] / (in_unit * gain * k) if k >= 1 else finest / (in_unit * gain)
    unit = in_unit * step * gain / 2 ** ACT_SHIFT                    # real value of one membrane unit
    reach = math.ceil(a["v_th"] / unit - 1e-9)                       # smallest h with h * unit >= v_th
    vth = max(0, math.ceil((reach - 1) / 2 ** ACT_SHIFT))            # k: Lava fires on v > k << 6
    w_int = np.clip(np.round(w["weight"].astype(np.float64) / step), -W_MAX, W_MAX).astype(np.int64)
    axis = 0 if syn["op"] == "conv2d" else len(syn["shape"]) - 1
    neuron = {"dv": _dv(a), "shift": ACT_SHIFT, "vth": np.int64(vth * 2 ** ACT_SHIFT + 1), "vr": np.int64(0),
              "soft": False, "bias": np.zeros((), np.int64), "wrap": True, "lava_vth": vth,
              "bias_mant": np.zeros((), np.int64), "bias_exp": np.zeros((), np.int64)}
    b = w.get("bias")
    if b is not None:
        mant, exp = quantize_bias(_per_channel(b.astype(np.float64), axis, len(syn["shape"])) * gain / unit)
        neuron.update(bias=mant << exp, bias_mant=mant, bias_exp=exp)
    return {"w": w_int, "b": np.zeros(w_int.shape[0], np.int64), "library": True}, in_unit * step, neuron
