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

import processes as P
import quantize
from kernels import KNOWN_OPS, SYNAPSES


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
        weight_synapses: int = 2) -> dict:
    """Run ``x [T, B, ...]`` through the graph. Returns ``{name: [T, B, ...] float array}``.

    ``weight_synapses``: fixed point only, 8-bit synapses per connection (``quantize.plan``).
    """
    mode = "fixed" if fixed_point else "float"
    # Checked here: an error raised inside a Lava process model would hang the run instead.
    unknown = [(n["name"], n["op"]) for n in graph["nodes"][1:] if n["op"] not in KNOWN_OPS]
    if unknown:
        raise ValueError(f"this runtime has no kernel for nodes {unknown}")
    t_steps, batch = x.shape[:2]
    sched = schedule(graph)
    out_name = graph["output"]
    total = t_steps + sched[out_name][1]
    q = quantize.plan(graph, weights, synapses=weight_synapses) if fixed_point else {}
    shapes, procs = {}, {}
    for node in graph["nodes"]:
        name, shape = node["name"], (batch, *node["shape"])
        shapes[name] = shape
        if node["op"] == "input":
            data = x if not fixed_point else np.round(x / q[name]["unit"]).astype(np.int64)
            procs[name] = P.Source(shape=shape, data=data)
            continue
        start, _, lags = sched[name]
        spec = {
            "name": name, "op": node["op"], "runner_pid": os.getpid(), "attrs": node.get("attrs", {}),
            "weights": {k: weights[v] for k, v in node.get("params", {}).items()},
            "quant": q.get(name, {}).get("quant"), "T": t_steps, "start": start, "lags": lags,
            "in_shapes": [shapes[i] for i in node["inputs"]], "out_shape": shape,
            "total_steps": total, "record": record_dir if (record_all or name == out_name) else None,
        }
        if len(node["inputs"]) == 1:
            proc = P.Unary(in_shape=shapes[node["inputs"][0]], out_shape=shape, spec=spec)
        else:
            proc = P.Binary(in_shapes=[shapes[i] for i in node["inputs"]], out_shape=shape, spec=spec)
        for k, src in enumerate(node["inputs"]):
            procs[src].s_out.connect(getattr(proc, f"a_in{k}"))
        procs[name] = proc

    # Lava keys this map by process instance; it spares the compiler its search of this folder.
    model_map = {proc: P.MODELS[(type(proc), mode)] for proc in procs.values()}
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if fixed_point else "floating_pt", exception_proc_model_map=model_map)
    last = procs[out_name]
    try:
        last.run(condition=RunSteps(num_steps=total), run_cfg=cfg)
    finally:
        last.stop()
    names = [n["name"] for n in graph["nodes"][1:]] if record_all else [out_name]
    result = {}
    for name in names:
        trace = np.load(os.path.join(record_dir, name + ".npy"))
        unit = q[name]["unit"] if fixed_point else 1.0
        result[name] = (trace.astype(np.float64) * unit).astype(np.float32) if fixed_point else trace
    return result
