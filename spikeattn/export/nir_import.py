"""``from_nir``: a NIR graph (or ``.nir`` file) -> an ``nn.Module`` on time-major ``[T, B, ...]`` input.

Each NIR node becomes one module (``NODES``, a table keyed by the NIR class name); the graph runs
nodes in topological order and, as NIR says, a node with several incoming edges gets their sum.
Static nodes (Affine, Linear, Conv2d, pooling, Flatten, Scale, Threshold) act on every time step;
neurons (LIF, IF, CubaLIF whose current decays fully each step) run over the sequence
(``nir_neurons``). NIR's sizes are per sample, so ``Flatten.start_dim`` 0 is our dim 2.

``dt`` (seconds per step, needed to turn NIR's ``tau`` into steps): the graph's ``metadata["dt"]``
(spikeattn writes it), else the neurons' ``metadata["dt"]``, else the ``dt`` argument, else 1e-4,
the value snntorch's exporter assumes without writing it. A ``dt`` argument that contradicts the
file is a ValueError, not a silent override.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

import numpy as np
import torch
from torch import nn

from spikeattn import surrogate as sg
from spikeattn.export.nir_neurons import NIRNeuron, SpikeattnNeuron, ge_threshold
from spikeattn.export.per_step import PerStep

__all__ = ["from_nir", "NIRNet", "DEFAULT_DT"]

DEFAULT_DT = 1e-4   # snntorch's export_nir/import_nir hard-code it


def _nir():
    from spikeattn._optional import require

    return require("nir", "from_nir")


def _f32(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, np.float32))


def _pair(v) -> tuple[int, int]:
    v = np.asarray(v).reshape(-1)
    return (int(v[0]), int(v[0])) if v.size == 1 else (int(v[0]), int(v[1]))


class _Scale(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.register_buffer("scale", _f32(scale))

    def forward(self, x):
        return x * self.scale


class _Threshold(nn.Module):
    """NIR's Threshold: ``x > theta`` (as ``x >= nextafter(theta, +inf)``, with a surrogate gradient)."""

    def __init__(self, theta, surrogate):
        super().__init__()
        self.register_buffer("v_th", torch.as_tensor(ge_threshold(theta)))
        self.surrogate = surrogate

    def forward(self, x):
        return self.surrogate(x - self.v_th.to(x.dtype))


# ----------------------------------------------------------------------------- NIR node -> module
# Each takes (node, name, dt, surrogate) and returns an nn.Module on [T, B, ...] (or None: identity).
def _affine(node, name, dt, sur):
    w = np.asarray(node.weight)
    bias = getattr(node, "bias", None)
    m = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        m.weight.copy_(_f32(w))
        if bias is not None:
            m.bias.copy_(_f32(bias))
    return m


def _conv2d(node, name, dt, sur):
    w = np.asarray(node.weight)
    pad = node.padding if isinstance(node.padding, str) else _pair(node.padding)
    m = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], tuple(w.shape[2:]), stride=_pair(node.stride),
                  padding=pad, dilation=_pair(node.dilation), groups=int(node.groups), bias=node.bias is not None)
    with torch.no_grad():
        m.weight.copy_(_f32(w))
        if node.bias is not None:
            m.bias.copy_(_f32(node.bias))
    return PerStep(m)


def _pool(sum_pool: bool):
    def build(node, name, dt, sur):
        # A zero-padded window sum (SumPool2d) is an average pool that divides by 1; AvgPool2d counts
        # the padding in its divisor (torch's count_include_pad, what every torch reader does).
        return PerStep(nn.AvgPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding),
                                    count_include_pad=True, divisor_override=1 if sum_pool else None))
    return build


def _flatten(node, name, dt, sur):
    start, end = int(node.start_dim), int(node.end_dim)   # per-sample dims: ours are 2 later
    return nn.Flatten(start + 2 if start >= 0 else start, end + 2 if end >= 0 else end)


def _meta(node) -> dict:
    return dict(getattr(node, "metadata", None) or {})


def _ours(node, name: str, dt: float) -> SpikeattnNeuron | None:
    """The exact module when ``to_nir`` wrote this node (its metadata says how), else None.

    The metadata must agree with the node's NIR parameters (as ``to_nir`` writes them); a file edited
    since is refused rather than imported by one description while the other says something else.
    """
    m = _meta(node)
    if m.get("neuron") not in ("LIF", "IF", "PLIF") or "reset" not in m or "v_th" not in m:
        return None
    soft = str(m["reset"]) == "subtract"
    kind, v_th, decay_input = str(m["neuron"]), float(m["v_th"]), bool(m.get("decay_input", True))
    tau = float(m["tau_steps"]) if kind != "IF" else None
    v_reset = 0.0 if soft else float(np.asarray(node.v_reset).flat[0])
    expect = {"v_threshold": np.nextafter(np.float32(v_th), np.float32(-np.inf)), "v_reset": v_reset}
    if kind == "IF":
        expect["r"] = 1.0 / dt
    else:
        expect.update(tau=tau * dt, r=1.0 if decay_input else tau, v_leak=v_reset)
    for field, want in expect.items():
        have = np.asarray(getattr(node, field), np.float64)
        if not np.allclose(have, want, rtol=1e-9, atol=0.0):
            raise ValueError(f"NIR node {name!r}: spikeattn metadata ({kind}, v_th={v_th}, tau_steps={tau}, "
                             f"dt={dt}) implies {field} = {float(want)!r}, the node has {have.ravel()[:4].tolist()}; "
                             "drop the node's metadata to import it by NIR's equations")
    return SpikeattnNeuron(kind, tau, v_th, None if soft else v_reset, decay_input, sg.ATan(2.0))


def _lif(node, name, dt, sur):
    ours = _ours(node, name, dt)
    if ours is not None:
        return ours
    k = dt / np.asarray(node.tau, np.float64)
    return NIRNeuron(1.0 - k, k * np.asarray(node.r, np.float64), k * np.asarray(node.v_leak, np.float64),
                     node.v_threshold, node.v_reset, _meta(node).get("v_init", node.v_leak), sur)


def _if(node, name, dt, sur):
    ours = _ours(node, name, dt)
    if ours is not None:
        return ours
    r = np.asarray(node.r, np.float64)
    return NIRNeuron(1.0, dt * r, 0.0, node.v_threshold, node.v_reset, _meta(node).get("v_init", 0.0), sur)


def _cuba_lif(node, name, dt, sur):
    ratio = dt / np.asarray(node.tau_syn, np.float64)
    if not np.allclose(ratio, 1.0, rtol=1e-6, atol=0.0):
        raise NotImplementedError(
            f"NIR node {name!r} (CubaLIF): its synaptic current keeps part of itself from step to step "
            f"(dt / tau_syn = {ratio.min():.6g}..{ratio.max():.6g}, dt = {dt:g} s); spikeattn's LIF has no "
            "current state, so only CubaLIF with tau_syn = dt (the current decays fully each step) is imported")
    # i = w_in * I this step (dt/tau_syn = 1); then the LIF membrane with input r * i.
    k = dt / np.asarray(node.tau_mem, np.float64)
    return NIRNeuron(1.0 - k, k * np.asarray(node.r, np.float64) * np.asarray(node.w_in, np.float64),
                     k * np.asarray(node.v_leak, np.float64), node.v_threshold, node.v_reset,
                     _meta(node).get("v_init", node.v_leak), sur)


NODES = {
    "Input": lambda *a: None, "Output": lambda *a: None,
    "Affine": _affine, "Linear": _affine, "Conv2d": _conv2d, "Flatten": _flatten,
    "SumPool2d": _pool(True), "AvgPool2d": _pool(False),
    "Scale": lambda node, name, dt, sur: _Scale(node.scale),
    "Threshold": lambda node, name, dt, sur: _Threshold(node.threshold, sur),
    "LIF": _lif, "IF": _if, "CubaLIF": _cuba_lif,
}


# ----------------------------------------------------------------------------- graph
class NIRNet(nn.Module):
    """The imported graph: ``forward(x [T, B, ...]) -> [T, B, ...]``; ``trace(x)`` gives every node's output.

    Modules live in ``self.nodes`` under the NIR names with "." replaced by "_" (``self.keys`` maps
    NIR name -> key, made unique). Stateless: each call starts every neuron from its initial membrane.
    """

    def __init__(self, order: list[str], inputs: dict[str, list[str]], modules: dict[str, nn.Module | None],
                 input_name: str, output_name: str, input_shape: tuple[int, ...] | None, dt: float):
        super().__init__()
        self.order, self.inputs, self.dt = order, inputs, dt
        self.input_name, self.output_name = input_name, output_name
        self.input_shape = input_shape
        self.keys = {}
        for n in order:   # module names cannot hold "."; "a.b" and "a_b" must not share a key
            key = n.replace(".", "_")
            while key in self.keys.values():
                key += "_"
            self.keys[n] = key
        self.nodes = nn.ModuleDict({self.keys[n]: m for n, m in modules.items() if m is not None})

    def trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{NIR node name: output [T, B, ...]}`` for every node, in run order."""
        if not isinstance(x, torch.Tensor) or x.dim() < 3:
            raise ValueError(f"input must be a tensor [T, B, ...], got {getattr(x, 'shape', type(x).__name__)}")
        if self.input_shape is not None and tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"input per-sample shape must be {self.input_shape} (the graph's Input node), "
                             f"got {tuple(x.shape[2:])} in [T, B, ...] = {tuple(x.shape)}")
        out = {}
        for name in self.order:
            srcs = self.inputs[name]
            h = x if name == self.input_name else out[srcs[0]]
            for s in srcs[1:]:                 # NIR: several incoming edges are summed
                h = h + out[s]
            key = self.keys[name]
            out[name] = self.nodes[key](h) if key in self.nodes else h
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trace(x)[self.output_name]


def _topological(names: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Kahn's order (ties in file order); NotImplementedError naming the nodes of any cycle."""
    indeg, succ = {n: 0 for n in names}, defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    ready, order = [n for n in names if indeg[n] == 0], []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    if len(order) != len(names):
        cyc = sorted(n for n in names if n not in order)
        raise NotImplementedError(f"NIR graph has a recurrent loop (nodes in or after it: {cyc}): from_nir imports "
                                  "feed-forward graphs (chains and DAGs with additions) only")
    return order


def _resolve_dt(graph, dt) -> float:
    found = {}
    if "dt" in (graph.metadata or {}):
        found["graph metadata"] = float(graph.metadata["dt"])
    else:
        per_node = {float(_meta(n)["dt"]) for n in graph.nodes.values() if "dt" in _meta(n)}
        if len(per_node) > 1:
            raise ValueError(f"NIR nodes disagree on metadata dt: {sorted(per_node)}")
        if per_node:
            found["node metadata"] = per_node.pop()
    if dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a finite number of seconds > 0, got {dt!r}")
        for where, v in found.items():
            if not math.isclose(v, dt, rel_tol=1e-12):
                raise ValueError(f"dt={dt!r} contradicts the file's {where} dt={v!r}; leave dt=None to use the file's")
    value = next(iter(found.values()), dt if dt is not None else DEFAULT_DT)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"the file's dt must be a finite number of seconds > 0, got {value!r}")
    return value


def from_nir(graph_or_path, dt: float | None = None) -> NIRNet:
    """Import a NIR graph as a module on time-major ``[T, B, ...]`` input (see the module docstring).

    Args:
        graph_or_path: a ``nir.NIRGraph`` or the path of a ``.nir`` file.
        dt: seconds per step, used only when the file has none (default then 1e-4).

    Returns:
        ``NIRNet``; ``net(x)`` gives the Output node's ``[T, B, ...]``, ``net.trace(x)`` every node's.
        Raises NotImplementedError naming the node for a node kind without a mapping, a CubaLIF
        whose current outlives a step, nested or recurrent graphs; ValueError for bad ``dt``.

    Example:
        >>> net = from_nir(to_nir(model, x), dt=None); spikes = net(x)
    """
    nir = _nir()
    if isinstance(graph_or_path, (str, os.PathLike)):
        graph = nir.read(graph_or_path)
    elif isinstance(graph_or_path, nir.NIRGraph):
        graph = graph_or_path
    else:
        raise TypeError(f"graph_or_path must be a nir.NIRGraph or a file path, got {type(graph_or_path).__name__}")
    dt = _resolve_dt(graph, dt)
    names = list(graph.nodes)
    unknown = [(n, type(v).__name__) for n, v in graph.nodes.items() if type(v).__name__ not in NODES]
    if unknown:
        raise NotImplementedError("from_nir has no mapping for NIR node(s) " + ", ".join(f"{n!r} ({t})" for n, t in unknown)
                                  + f"; supported: {sorted(NODES)}")
    kinds = defaultdict(list)
    for n, v in graph.nodes.items():
        kinds[type(v).__name__].append(n)
    if len(kinds["Input"]) != 1 or len(kinds["Output"]) != 1:
        raise NotImplementedError(f"from_nir needs exactly one Input and one Output node, got inputs "
                                  f"{kinds['Input']} and outputs {kinds['Output']}")
    edges = [(str(a), str(b)) for a, b in graph.edges]
    bad = [e for e in edges if e[0] not in graph.nodes or e[1] not in graph.nodes]
    if bad:
        raise ValueError(f"NIR edges name unknown nodes: {bad}")
    order = _topological(names, edges)
    inputs = {n: [a for a, b in edges if b == n] for n in names}
    (source,), (sink,) = kinds["Input"], kinds["Output"]
    cut = [n for n in order if not inputs[n] and n != source] + ([source] if inputs[source] else [])
    if cut:
        raise ValueError(f"NIR graph must run from its Input: node(s) {cut} get no input from it "
                         "(or the Input node has incoming edges)")
    sur = sg.ATan(2.0)
    modules = {n: NODES[type(graph.nodes[n]).__name__](graph.nodes[n], n, dt, sur) for n in order}
    shape = (graph.nodes[source].input_type or {}).get("input")
    shape = None if shape is None else tuple(int(s) for s in np.asarray(shape).reshape(-1))
    return NIRNet(order, inputs, modules, source, sink, shape, dt)
