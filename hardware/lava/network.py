"""Build the Lava processes of a graph, run them for ``T + delay`` steps, collect the outputs.

Every synapse-like node delays by one step (as Lava Dense/Conv). A node's ``start`` is the
largest delay among its inputs; the runtime FIFOs the earlier input of a two-input node by the
difference (``lags``), so residual adds and masks combine values of the same time step, and it
runs ``T + delay(output)`` steps so the last output arrives. Returned traces are realigned:
entry ``t`` of every node is the value for input step ``t``.
"""

from __future__ import annotations

import os

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg

import library as lava_library
import processes as P
import quantize
from kernels import KNOWN_OPS, SYNAPSES


LIBRARY_KEY = "library"   # in the result of a library run: "node: LavaModel + LavaModel ..." per pair


def schedule(graph: dict) -> dict:
    """``{name: (start, delay, lags)}``; nodes must come in topological order."""
    seen, out = {}, {}
    for node in graph["nodes"]:
        missing = [i for i in node["inputs"] if i not in seen]
        if missing:
            raise ValueError(f"node {node['name']!r} reads {missing} before they are defined")
        start = max((seen[i] for i in node["inputs"]), default=0)
        delay = start + (1 if node["op"] in SYNAPSES else 0)
        out[node["name"]] = (start, delay, [start - seen[i] for i in node["inputs"]])
        seen[node["name"]] = delay
    return out


def run(graph: dict, weights: dict, x: np.ndarray, fixed_point: bool, record_dir: str, record_all: bool,
        weight_synapses: int | None = None, library: bool = False, plan: str = "library") -> dict:
    """Run ``x [T, B, ...]`` through the graph. Returns ``{name: [T, B, ...] float array}``.

    Fixed point only: ``plan`` and ``weight_synapses`` choose the numbers (``quantize.plan``);
    ``library``: the library pairs (``quantize.library_pairs``) run as Lava's own Dense/Conv/LIF
    processes (``library.py``), one sample per Lava run (those processes have no batch axis); it
    needs ``plan="library"``, whose numbers are the same with or without it.
    """
    # Checked here: an error raised inside a Lava process model would hang the run instead.
    unknown = [(n["name"], n["op"]) for n in graph["nodes"][1:] if n["op"] not in KNOWN_OPS]
    if unknown:
        raise ValueError(f"this runtime has no kernel for nodes {unknown}")
    if library and not fixed_point:
        raise ValueError("library processes run in fixed point only")
    if library and plan != "library":
        raise ValueError(f"plan {plan!r} cannot run on Lava's library processes (only plan 'library' can)")
    q = quantize.plan(graph, weights, kind=plan, synapses=weight_synapses) if fixed_point else {}
    if library:
        runs = []
        for b in range(x.shape[1]):
            sub = os.path.join(record_dir, str(b))
            os.makedirs(sub)
            runs.append(_run_once(graph, weights, x[:, b:b + 1], q, sub, record_all, library=True))
        traces = {k: np.concatenate([r[k] for r in runs], axis=1) for k in runs[0] if k != LIBRARY_KEY}
        traces[LIBRARY_KEY] = runs[0][LIBRARY_KEY]
    else:
        traces = _run_once(graph, weights, x, q, record_dir, record_all, library=False)
    if not fixed_point:
        return traces
    return {k: v if k == LIBRARY_KEY else (v.astype(np.float64) * q[k]["unit"]).astype(np.float32)
            for k, v in traces.items()}


def _binary(graph: dict, name: str) -> bool:
    """Whether node ``name`` carries 0/1 spikes (a neuron, maybe reshaped or max-pooled)."""
    nodes = {n["name"]: n for n in graph["nodes"]}
    while nodes[name]["op"] in ("reshape", "to_tokens", "merge_heads", "maxpool2d"):
        name = nodes[name]["inputs"][0]
    return nodes[name]["op"] == "lif"


def _run_once(graph, weights, x, q, record_dir, record_all, library):
    fixed_point = bool(q)
    mode = "fixed" if fixed_point else "float"
    t_steps, batch = x.shape[:2]
    sched = schedule(graph)
    out_name = graph["output"]
    total = t_steps + sched[out_name][1]
    pairs = quantize.library_pairs(graph) if library else {}
    lifs = {lif: syn for syn, lif in pairs.items()}
    nodes = {n["name"]: n for n in graph["nodes"]}
    shapes, procs, lib = {}, {}, {}
    for node in graph["nodes"]:
        name, shape = node["name"], (batch, *node["shape"])
        shapes[name] = shape
        if node["op"] == "input":
            data = x if not fixed_point else np.round(x / q[name]["unit"]).astype(np.int64)
            procs[name] = P.Source(shape=shape, data=data)
            continue
        if name in pairs:
            continue          # built with its neuron
        start, _, lags = sched[name]
        spec = {
            "name": name, "op": node["op"], "runner_pid": os.getpid(), "attrs": node.get("attrs", {}),
            "weights": {k: weights[v] for k, v in node.get("params", {}).items()},
            "quant": q.get(name, {}).get("quant"), "T": t_steps, "start": start, "lags": lags,
            "in_shapes": [shapes[i] for i in node["inputs"]], "out_shape": shape,
            "total_steps": total, "record": record_dir if (record_all or name == out_name) else None,
        }
        if name in lifs:      # Lava's processes; a tap (identity node) records and relays the spikes
            syn = nodes[lifs[name]]
            src = syn["inputs"][0]
            pair = lava_library.Pair(syn, nodes[src]["shape"], q[syn["name"]]["quant"], q[name]["quant"], _binary(graph, src))
            pair.connect_input(procs[src].s_out)
            spec.update(op="reshape", attrs={"shape": node["shape"]}, lags=[0])
            proc = P.Unary(in_shape=shape, out_shape=shape, spec=spec)
            pair.output_port().connect(proc.a_in0)
            procs[name], lib[name] = proc, (pair, start)
            continue
        if len(node["inputs"]) == 1:
            proc = P.Unary(in_shape=shapes[node["inputs"][0]], out_shape=shape, spec=spec)
        else:
            proc = P.Binary(in_shapes=[shapes[i] for i in node["inputs"]], out_shape=shape, spec=spec)
        for k, src in enumerate(node["inputs"]):
            procs[src].s_out.connect(getattr(proc, f"a_in{k}"))
        procs[name] = proc

    # Lava keys this map by process instance; it spares the compiler its search of this folder.
    # Lava's own processes are not in it: Loihi2SimCfg picks their fixed_pt (bit-accurate) models.
    model_map = {proc: P.MODELS[(type(proc), mode)] for proc in procs.values()}
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if fixed_point else "floating_pt", exception_proc_model_map=model_map)
    last = procs[out_name]
    # A neuron's bias must act from its first input on (its start), not from step 0: run up to
    # each start, then switch the biases of the neurons starting there on (Lava Var.set).
    starts = sorted({s for pair, s in lib.values() if pair.has_bias})
    done = 0
    try:
        for s in starts:
            if s > done:
                last.run(condition=RunSteps(num_steps=s - done), run_cfg=cfg)
                done = s
            for pair, start in lib.values():
                if start == s and pair.has_bias:
                    pair.set_bias()
        last.run(condition=RunSteps(num_steps=total - done), run_cfg=cfg)
    finally:
        last.stop()
    names = [n["name"] for n in graph["nodes"][1:] if n["name"] not in pairs] if record_all else [out_name]
    out = {name: np.load(os.path.join(record_dir, name + ".npy")) for name in names}
    if library:   # which Lava process models ran each library neuron (and its synapses)
        out[LIBRARY_KEY] = np.array([f"{name}: " + " + ".join(p.model_class.__name__ for p in [pair.lif, *pair.conns])
                                     for name, (pair, _) in lib.items()], dtype=str)
    return out
