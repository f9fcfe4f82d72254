"""``loihi_report``: does an exported network fit on Loihi 1 / Loihi 2, and what would one inference cost?

Each neuron layer of the export graph is a mapped layer: its neurons plus the synapses that feed
them (a Linear, a Conv, or, after attention, one synapse per neuron from the custom process).
Cores follow ``loihi_cores`` (nengo-loihi's max over limits; convolutions tiled spatially); weights
take ``weight_synapses`` 8-bit synapses per connection as in the fixed-point plan
(``hardware/lava/quantize.py``). What Lava's process library cannot express (soft reset, spike x
spike attention, residual adds, pooling, the readout) is listed in ``off_library``: it runs as the
project's custom processes (on Loihi 2: the embedded x86 cores or microcode). Energy and latency are
estimates from ``spikeattn.opcount`` counts priced with the profile's per-operation figures.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikeattn._paths import runtime_module
from spikeattn.export.artifact import LavaArtifact, open_artifact
from spikeattn.export.lava import export_graph
from spikeattn.export.loihi_cores import LayerTooLarge, conv_cores, dense_cores
from spikeattn.export.loihi_profile import LoihiProfile, load_loihi_profile
from spikeattn.models.spikformer import Spikformer
from spikeattn.opcount.report import format_table, human

__all__ = ["loihi_report", "LoihiReport", "off_library_nodes"]

ROUTING = ("reshape", "to_tokens", "merge_heads")      # free: they only rename neurons
OFF_LIBRARY = {   # what stays a custom process in run_lava(..., library=True), and why
    "ssa": "spike x spike attention (both operands change every step): no synapse can hold it",
    "sdsa_kv": "spike-driven attention (K * V summed over tokens): products of two spike trains",
    "sdsa_mask": "spike-driven attention mask (Q * kv): products of two spike trains",
    "add": "residual add of two spike trains with their delays aligned (FIFO of the earlier input)",
    "maxpool2d": "max pooling: no Lava library process",
    "avgpool2d": "average pooling: no Lava library process in fixed point",
    "readout": "classifier head: mean over tokens and a real-valued Linear, on the host",
}


@functools.cache
def _quantize_module():
    """hardware/lava/quantize.py (numpy only): the one rule of which pairs Lava's library runs."""
    return runtime_module("quantize")


def off_library_nodes(graph: dict) -> list[dict]:
    """``[{name, op, why}]``: the nodes ``run_lava(..., library=True)`` keeps as custom processes.

    A Linear/Conv and its neuron run on Lava's processes exactly when ``library_pairs`` of the
    runtime (hardware/lava/quantize.py) says so; the reasons below are its conditions.
    """
    q = _quantize_module()
    pairs = q.library_pairs(graph)
    nodes = {n["name"]: n for n in graph["nodes"]}
    users = q._consumers(graph)
    out = []
    for n in graph["nodes"][1:]:
        name, op = n["name"], n["op"]
        if name in pairs or name in pairs.values() or op in ROUTING:
            continue
        if op == "lif":
            src = nodes[n["inputs"][0]]
            why = q.lif_why(n["attrs"]) or (
                "fed by graded (non-spike) input: 16-bit inputs times 8-bit weights exceed Lava's 17-bit threshold"
                if src["op"] in ("linear", "conv2d") else f"fed by a custom process ({src['op']})")
        elif op in ("linear", "conv2d"):
            why = ("its neuron stays custom (see that node)" if [u["op"] for u in users[name]] == ["lif"]
                   else "not followed by exactly one neuron layer")
        else:
            why = OFF_LIBRARY.get(op, "no Lava library process")
        out.append({"name": name, "op": op, "why": why})
    return out


@dataclass
class LoihiReport:
    """Per-layer resources, totals, fit per system, off-library nodes, energy/latency estimates."""

    profile: str
    layers: list = field(default_factory=list)
    off_library: list = field(default_factory=list)
    chips_per_system: dict = field(default_factory=dict)
    cores_per_chip: int = 128
    weight_synapses: int = 1
    estimate: dict | None = None
    sources: dict = field(default_factory=dict)

    @property
    def total_cores(self) -> int:
        return sum(layer["cores"] for layer in self.layers)

    @property
    def chips(self) -> int:
        return math.ceil(self.total_cores / self.cores_per_chip)

    @property
    def fits(self) -> dict[str, bool]:
        return {name: self.chips <= n for name, n in self.chips_per_system.items()}

    def table(self) -> str:
        header = ["layer", "op", "neurons", "synapses", "syn. memory", "axons in", "axons out", "cores", "binding"]
        rows = [[l["name"], l["op"], human(l["neurons"]), human(l["synapses"]), human(l["synapse_bits"] / 8) + "B",
                 human(l["axons_in"]), human(l["axons_out"]), str(l["cores"]), l["binding"]] for l in self.layers]
        fits = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in self.fits.items())
        rows.append(["total", "", human(sum(l["neurons"] for l in self.layers)),
                     human(sum(l["synapses"] for l in self.layers)),
                     human(sum(l["synapse_bits"] for l in self.layers) / 8) + "B", "", "", str(self.total_cores),
                     f"{self.chips} chip(s)"])
        text = format_table(header, rows) + f"\nprofile {self.profile}; fits {fits}"
        if self.off_library:
            text += "\noff-library (custom processes): " + ", ".join(f"{o['name']} ({o['op']})" for o in self.off_library)
        if self.estimate:
            e = self.estimate
            text += (f"\nestimate per inference: {e['energy_j'] * 1e6:.4g} uJ, "
                     f"{e['latency_s'] * 1e6:.4g} us (lower bound, see sources)")
        return text

    def as_dict(self) -> dict:
        return {"profile": self.profile, "weight_synapses": self.weight_synapses, "total_cores": self.total_cores,
                "chips": self.chips, "cores_per_chip": self.cores_per_chip, "fits": self.fits,
                "layers": self.layers, "off_library": self.off_library, "estimate": self.estimate,
                "sources": self.sources}

    def to_json(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1, default=float))
        return path


def _consumers(graph: dict) -> dict:
    """``{name: [consumer nodes]}`` looking through routing nodes (reshape, to_tokens, merge_heads)."""
    direct = _quantize_module()._consumers(graph)

    def real(name):
        out = []
        for c in direct[name]:
            out += real(c["name"]) if c["op"] in ROUTING else [c]
        return out
    return {name: real(name) for name in direct}


def _fanout_cores(consumer: dict, done: dict) -> int:
    """Output axons one neuron needs towards ``consumer`` (one per destination core it reaches)."""
    layer = done.get(consumer["name"])
    if layer is None:
        return 1                                    # a custom process or the host: one axon
    if layer["op"] == "conv2d":
        return -(-consumer["shape"][0] // layer["tile"][0])   # every out-channel tile (halo not counted)
    return max(1, -(-layer["cores"] // layer["tokens"]))      # token-split dense: the cores of its token


def _layers(graph: dict, arrays: dict, p: LoihiProfile, weight_synapses: int, max_cores: int) -> list[dict]:
    """Mapped layers, computed output-to-input (a layer's output axons depend on its consumers)."""
    nodes = {n["name"]: n for n in graph["nodes"]}
    users = _consumers(graph)
    bits = int(p["precision.weight_bits"]) * weight_synapses
    done = {}
    for lif in reversed([n for n in graph["nodes"] if n["op"] == "lif"]):
        src = nodes[lif["inputs"][0]]
        neurons = int(np.prod(lif["shape"]))
        # one output axon per destination core; an output layer sends its spikes off chip (one each)
        axons_out = neurons * max(1, sum(_fanout_cores(c, done) for c in users[lif["name"]]))
        try:
            if src["op"] == "conv2d":
                w = arrays[src["params"]["weight"]]
                a = src["attrs"]
                in_shape = nodes[src["inputs"][0]]["shape"]
                row = conv_cores(in_shape, src["shape"], w.shape[2:], a["stride"], axons_out, bits, p, max_cores)
                nz = (w != 0).sum() / w.size
                row.update(synapses=int(round(row.pop("dense_synapses") * nz)))
                name, op = src["name"], "conv2d"
            elif src["op"] == "linear":
                w = arrays[src["params"]["weight"]]
                tokens = int(np.prod(src["shape"][:-1]))
                row = dense_cores(tokens, w.shape[1], w.shape[0], axons_out, bits, p)
                row.update(synapses=int((w != 0).sum()) * tokens, tokens=tokens)
                name, op = src["name"], "linear"
            else:   # input from a custom process (attention): one synapse per neuron
                row = dense_cores(neurons, 1, 1, axons_out, bits, p)
                row.update(synapses=neurons, tokens=neurons)
                name, op = lif["name"], "lif"
            if row["cores"] > max_cores:
                raise LayerTooLarge(f"needs {row['cores']} cores ({row['binding']})")
        except LayerTooLarge as e:
            raise ValueError(f"layer {src['name']!r} ({src['op']}, {neurons} neurons) cannot be held by profile "
                             f"{p.name!r}: {e}; its largest system has {max_cores} cores") from None
        row.pop("needs", None)
        row.pop("utilisation", None)
        done[src["name"]] = {"name": name, "op": op, "neuron": lif["name"], "synapse_bits_per_weight": bits, **row}
    return [done[n["name"]] for n in graph["nodes"] if n["name"] in done]


def _estimate(model: nn.Module, example_input: torch.Tensor, layers: list[dict], p: LoihiProfile) -> dict:
    """Energy (opcount counts priced by the profile) and a latency lower bound, per sample."""
    from spikeattn.opcount import count

    report = count(model, example_input)
    rows = report.by_module
    images = isinstance(model, Spikformer) and example_input.dim() == 4     # [B, C, H, W], repeated T times
    batch = example_input.shape[0] if images else example_input.shape[1]
    energy = report.energy(p.energy)["total"]["total_j"] / batch

    def sop(name):   # the counter names modules, the graph names nodes (LinearBN's '.linear' suffix)
        while name and name not in rows:
            name = name.rpartition(".")[0]
        return rows[name]["sop"] if name else 0

    steps = max((rows[l["neuron"]]["neuron"] / (l["neurons"] * batch) for l in layers if l["neuron"] in rows),
                default=1)
    # each step lasts at least as long as its busiest core's synaptic operations; the layers form a
    # pipeline that adds one step per layer (Lava's Dense/Conv delay)
    step_s = max((sop(l["name"]) / batch / steps / l["cores"] for l in layers), default=0) * p["latency.synop_ns"] * 1e-9
    return {"energy_j": energy, "latency_s": step_s * (steps + len(layers)), "steps": int(round(steps)),
            "sop_per_sample": report.total("sop") / batch, "energy_source": p.sources["compute.ac_pj"]["source"],
            "latency_source": p.sources["latency.synop_ns"]["source"],
            "note": "estimate: synaptic ops, neuron updates and spike moves priced per operation; latency is a "
                    "lower bound (busiest core's synaptic ops x synop time, per step, plus one step per layer)"}


def loihi_report(model_or_artifact, example_input: torch.Tensor | None = None, profile="loihi2",
                 weight_synapses: int = 1) -> LoihiReport:
    """Resource report of a model (or an exported artifact) on a Loihi profile.

    Args:
        model_or_artifact: an exportable model (see ``to_lava``) or a LavaArtifact / its folder.
        example_input: the model's input (needed for a model; gives the energy estimate too).
        profile: ``"loihi1"``, ``"loihi2"``, a TOML path or a LoihiProfile.
        weight_synapses: 8-bit synapses per connection (1: sign + 8 bits, as ``run_lava``'s default
            fixed-point plan and Lava's library processes; 2: sign + 16 bits, as ``plan="per_channel"``).

    Returns:
        LoihiReport. Raises ValueError for a layer no system of the profile can hold.

    Example:
        >>> rep = loihi_report(sa.models.spikformer("spikformer-mini-fmnist").eval(), torch.rand(1, 1, 28, 28))
        >>> print(rep.table()); rep.fits["one chip"]
    """
    if weight_synapses not in (1, 2):
        raise ValueError(f"weight_synapses must be 1 or 2, got {weight_synapses!r}")
    p = load_loihi_profile(profile)
    if isinstance(model_or_artifact, nn.Module):
        if example_input is None:
            raise ValueError("example_input is required when a model is given (it fixes the layer shapes)")
        graph, arrays = export_graph(model_or_artifact, example_input)
    elif isinstance(model_or_artifact, (LavaArtifact, str, os.PathLike)):
        art = model_or_artifact if isinstance(model_or_artifact, LavaArtifact) else open_artifact(model_or_artifact)
        graph = art.graph
        with np.load(Path(art.path) / "weights.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        raise TypeError(f"model_or_artifact must be an nn.Module, a LavaArtifact or a folder, "
                        f"got {type(model_or_artifact).__name__}")
    max_cores = max(p.systems.values()) * int(p["chip.cores"])
    layers = _layers(graph, arrays, p, weight_synapses, max_cores)
    rep = LoihiReport(profile=p.name, layers=layers, off_library=off_library_nodes(graph),
                      chips_per_system=dict(p.systems), cores_per_chip=int(p["chip.cores"]),
                      weight_synapses=weight_synapses, sources=p.sources)
    if isinstance(model_or_artifact, nn.Module):
        rep.estimate = _estimate(model_or_artifact, example_input, layers, p)
    return rep
