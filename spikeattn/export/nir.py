"""``to_nir``: a feed-forward SNN -> a NIR graph (``nir`` 1.0.x), through the export IR of ``graph.py``.

The model is first turned into the same framework-neutral graph that ``to_lava`` writes (BatchNorm
folded, one node per layer, names = module paths); ``NODES`` then maps each IR node kind to NIR
nodes. IR kinds without an entry (max-pool, attention, residual add, token reshapes) are listed,
every one at once, in ``NotExportable``.

Neuron mapping. NIR's LIF is continuous time, ``tau dv/dt = (v_leak - v) + r I``; forward Euler
with step ``dt`` gives ``v <- v + dt/tau ((v_leak - v) + r I)``. With ``tau = tau_steps * dt`` this
is our discrete charge exactly (in real arithmetic):

========================  ================  ===========================================  =============
ours                      NIR node          r                                            v_leak
========================  ================  ===========================================  =============
LIF, decay_input=True     LIF               1                                            v_reset [*]
LIF, decay_input=False    LIF               tau_steps                                    v_reset [*]
PLIF                      LIF               as LIF, with the learned tau_steps = 1/sigmoid(w)
IF                        IF (dv/dt = r I)  1 / dt                                       --
========================  ================  ===========================================  =============

[*] 0 for a soft reset (our leak then goes towards 0). IF nodes carry no ``tau_steps``.

We fire on ``v >= v_th``, NIR on ``v > v_threshold``: ``v_threshold`` is ``nextafter(v_th, -inf)``
in float32, exact for a float32 simulation (off by one float32 ulp for a float64 one). Hard reset
maps to NIR's ``v_reset``. NIR 1.0.8 has no soft (subtractive) reset: its LIF/IF always set
``v = v_reset`` after a spike. A soft-reset neuron is written with ``v_reset = 0`` (the nearest hard
reset) and ``metadata["reset"] = "subtract"`` with ``metadata["v_th"]``; a consumer that ignores the
metadata simulates a hard reset to 0, which is a different network. Every neuron node carries
metadata: ``neuron`` (LIF/IF/PLIF), ``tau_steps``, ``decay_input``, ``reset`` ("hard"/"subtract"),
``v_th``, ``v_init`` (the membrane at t=0, which equals ``v_reset``) and ``dt``, which the graph
carries too (readers map node by node: the node is what they see). ``from_nir`` reads it all back.

Linear/Conv/pooling nodes have no time dynamics: they act on each time step (no delay).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from spikeattn.export.graph import CONVERTERS, NotExportable, _leaves, build_graph, fold_batchnorm
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF

__all__ = ["to_nir"]

_MATMUL = "NIR has no matmul node: spiking attention multiplies two spike tensors (Q K^T, then by V), which " \
          "no NIR node (Affine/Linear/Conv/pooling, all with fixed weights) can express"
_SDSA = "NIR has no node for an elementwise product of two spike tensors: spike-driven attention masks V " \
        "with the column sum of Q*K"
_MAXPOOL = "NIR 1.0 has no max-pool node (only SumPool2d and AvgPool2d)"

# Module type name -> why NIR cannot express it (used to reword the IR builder's generic reasons).
MODULE_WHY = {"SpikingSelfAttention": _MATMUL, "SpikeDrivenSelfAttention": _SDSA, "MaxPool2d": _MAXPOOL}

# IR node kinds that have no NIR form, and why.
OP_WHY = {
    "maxpool2d": _MAXPOOL, "ssa": _MATMUL, "sdsa_kv": _SDSA, "sdsa_mask": _SDSA,
    "add": "residual add: this exporter maps chains only (NIR would sum fan-in edges, but the two "
           "branches' delays are not part of NIR's semantics)",
    "to_tokens": "[C, H, W] -> [H*W, C] is a transpose; NIR's Flatten cannot permute dimensions",
    "merge_heads": "[heads, N, d] -> [N, heads*d] is a transpose; NIR's Flatten cannot permute dimensions",
}


def _nir():
    from spikeattn._optional import require

    return require("nir", "to_nir")  # tested with nir==1.0.8


# ----------------------------------------------------------------------------- IR node -> NIR nodes
# Each takes (nir, node, input shape, arrays, dt) and returns [(suffix, NIR node)] in run order;
# suffix "" keeps the IR name.
def _input(nir, node, in_shape, arrays, dt):
    return [("", nir.Input(input_type=np.array(node["shape"])))]


def _affine(nir, node, in_shape, arrays, dt):
    w = arrays[node["params"]["weight"]]
    if "bias" not in node["params"]:
        return [("", nir.Linear(weight=w))]
    return [("", nir.Affine(weight=w, bias=arrays[node["params"]["bias"]]))]


def _conv2d(nir, node, in_shape, arrays, dt):
    w = arrays[node["params"]["weight"]]
    b = arrays[node["params"]["bias"]] if "bias" in node["params"] else np.zeros(w.shape[0], np.float32)
    a = node["attrs"]
    return [("", nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=w, stride=tuple(a["stride"]),
                            padding=tuple(a["padding"]), dilation=(1, 1), groups=1, bias=b))]


def _avgpool2d(nir, node, in_shape, arrays, dt):
    # NIR does not say whether padding counts in AvgPool2d's divisor; ours does (count_include_pad),
    # and so does every torch reader (torch.nn.AvgPool2d's default), while no reader maps the
    # spec-equivalent SumPool2d + Scale (snntorch has neither, norse/nirtorch no Scale): AvgPool2d,
    # with the convention in metadata.
    a = node["attrs"]
    k, s, p = (np.array(a[key]) for key in ("kernel", "stride", "padding"))
    return [("", nir.AvgPool2d(kernel_size=k, stride=s, padding=p, metadata={"count_include_pad": True}))]


def _flatten(nir, node, in_shape, arrays, dt):
    return [("", nir.Flatten(input_type=np.array(in_shape), start_dim=0, end_dim=-1))]


def _neuron(nir, node, in_shape, arrays, dt):
    a, shape = node["attrs"], node["shape"]
    soft = a["v_reset"] is None
    v_reset = 0.0 if soft else float(a["v_reset"])
    full = lambda v: np.full(shape, v, np.float64)   # noqa: E731  NIR wants one value per neuron
    v_thr = np.full(shape, np.nextafter(np.float32(a["v_th"]), np.float32(-np.inf)), np.float32)
    meta = {"decay_input": bool(a["decay_input"]), "reset": "subtract" if soft else "hard",
            "v_th": float(a["v_th"]), "v_init": v_reset, "threshold_rule": "v >= v_th", "dt": dt}
    if a["mode"] == CHARGE_IF:
        meta["neuron"] = "IF"
        return [("", nir.IF(r=full(1.0 / dt), v_threshold=v_thr, v_reset=full(v_reset), metadata=meta))]
    tau_steps = float(a["decay"]) if a["mode"] == CHARGE_LIF else 1.0 / float(a["decay"])   # PLIF: decay = 1/tau
    meta.update(neuron="LIF" if a["mode"] == CHARGE_LIF else "PLIF", tau_steps=tau_steps)
    r = 1.0 if a["decay_input"] else tau_steps
    return [("", nir.LIF(tau=full(tau_steps * dt), r=full(r), v_leak=full(v_reset), v_threshold=v_thr,
                         v_reset=full(v_reset), metadata=meta))]


NODES = {"input": _input, "linear": _affine, "readout": _affine, "conv2d": _conv2d, "avgpool2d": _avgpool2d,
         "reshape": _flatten, "lif": _neuron}


# ----------------------------------------------------------------------------- model -> IR
def _module_of(named: dict, name: str) -> tuple[str, nn.Module]:
    """The module an IR node came from: the longest module path that prefixes the node's name."""
    parts = name.split(".")
    for i in range(len(parts), -1, -1):
        path = ".".join(parts[:i])
        if path in named:
            return path, named[path]
    return "", named[""]


def _nir_problems(model: nn.Module) -> list[tuple[str, str, str]]:
    """Leaves the IR can hold but NIR cannot (max-pool), found with the IR's own converters."""
    out = []
    for path, m, per_step in _leaves(model, "", False):
        fn = CONVERTERS.get(type(m))
        if fn is None:
            continue
        try:
            op = fn(m, per_step)[0]
        except ValueError:
            continue   # build_graph reports it
        if op in OP_WHY:
            out.append((path, type(m).__name__, OP_WHY[op]))
    return out


def _ir(model: nn.Module, example_input: torch.Tensor) -> tuple[dict, dict]:
    """The export IR (as ``to_lava`` builds it), or NotExportable with every problem, NIR's included."""
    from spikeattn.export.lava import MODEL_BUILDERS

    build = MODEL_BUILDERS.get(type(model))
    if build is None:
        model = fold_batchnorm(model)
    named = dict(model.named_modules())
    try:
        graph, arrays = build(model, example_input) if build else build_graph(model, example_input)
    except NotExportable as e:
        problems = [(p, t, MODULE_WHY.get(t, why)) for p, t, why in e.problems]
        seen = {p for p, _, _ in problems}
        problems += [x for x in ([] if build else _nir_problems(model)) if x[0] not in seen]
        order = {p: i for i, p in enumerate(named)}
        raise NotExportable(sorted(problems, key=lambda x: order.get(x[0], len(order)))) from None
    problems = {}   # module path -> (type, [reasons]): one entry per module, however many IR nodes
    for node in graph["nodes"]:
        if node["op"] not in NODES:
            path, m = _module_of(named, node["name"])
            why = OP_WHY.get(node["op"], f"IR node kind {node['op']!r} has no NIR form")
            reasons = problems.setdefault(path, (type(m).__name__, []))[1]
            if why not in reasons:
                reasons.append(why)
    if problems:
        raise NotExportable([(p, t, "; ".join(whys)) for p, (t, whys) in problems.items()])
    return graph, arrays


def _example(model: nn.Module) -> torch.Tensor:
    """``[1, 1, in_features]`` zeros when the first layer is a Linear (its input shape is then known)."""
    first = next((m for _, m, _ in _leaves(model, "", False)), None)
    if isinstance(first, nn.Linear):
        return torch.zeros(1, 1, first.in_features)
    raise ValueError("example_input=None works only when the model starts with nn.Linear; "
                     "pass example_input [T, B, ...] to fix the input shape")


def to_nir(model: nn.Module, example_input: torch.Tensor | None = None, dt: float = 1e-4):
    """Export a feed-forward SNN to a ``nir.NIRGraph`` (see the module docstring for the neuron mapping).

    Args:
        model: the pattern of ``spikeattn.export.PerStep`` (Sequential of Linear, PerStep(Conv2d,
            BatchNorm, AvgPool2d, Flatten), LIF/IF/PLIF in step mode 'm'); BatchNorm in eval mode is
            folded into the preceding weights.
        example_input: ``[T, B, ...]``; fixes the per-sample input shape. May be None when the model
            starts with ``nn.Linear``.
        dt: seconds per time step (NIR time constants are in seconds: ``tau = tau_steps * dt``);
            1e-4, the value snntorch's reader assumes. Stored in the graph's and every neuron's ``metadata["dt"]``.

    Returns:
        ``nir.NIRGraph``; node names are module paths, plus ``input`` and ``output``.
        Raises NotExportable listing every module NIR cannot express (max-pool, spiking attention:
        no matmul node), ImportError if ``nir`` is missing.

    Example:
        >>> g = to_nir(net.eval(), x[:, :1], dt=1e-3); nir.write("net.nir", g)
    """
    nir = _nir()
    if not isinstance(dt, (int, float)) or isinstance(dt, bool) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number of seconds > 0, got {dt!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    graph, arrays = _ir(model, _example(model) if example_input is None else example_input)
    shapes = {n["name"]: n["shape"] for n in graph["nodes"]}
    nodes, edges, last = {}, [], {}          # last: IR name -> the NIR node that carries its output
    for node in graph["nodes"]:
        in_shape = shapes[node["inputs"][0]] if node["inputs"] else None
        parts = NODES[node["op"]](nir, node, in_shape, arrays, float(dt))
        prev = [last[i] for i in node["inputs"]]
        for suffix, nir_node in parts:
            name = node["name"] + suffix
            nodes[name] = nir_node
            edges += [(p, name) for p in prev]
            prev = [name]
        last[node["name"]] = prev[0]
    nodes["output"] = nir.Output(output_type=np.array(shapes[graph["output"]]))
    edges.append((last[graph["output"]], "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": float(dt), "producer": "spikeattn"})
