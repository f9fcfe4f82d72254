"""``to_netx``: a feed-forward Dense/Conv + LIF network -> lava-dl's netx HDF5 file, written with h5py.

Layout (as lava-dl's slayer blocks write it and ``lava.lib.dl.netx.hdf5.Network`` reads it):
``/layer/<i>/`` in run order, each with ``type`` (``(1,)`` bytes: ``input``/``dense``/``conv``/``flatten``),
``shape`` (the layer's neurons, CHW), and for synaptic layers ``weight`` (integer mantissas,
``[out, in]`` or ``[out, in, kh, kw]``), ``bias`` (per output channel/feature), ``inFeatures`` /
``outFeatures`` or ``inChannels``/``outChannels``/``kernelSize``/``stride``/``padding``/``dilation``/
``groups``, and ``neuron/{type: CUBA, iDecay, vDecay, vThMant, refDelay, gradedSpike}``.

Mapping (fixed point, Loihi CUBA): ``iDecay = 4096`` (the current holds only this step's input),
``vDecay = round(4096 / tau_steps)`` (0 for IF), weights and bias multiplied by ``1/tau_steps`` when
``decay_input`` (as for Lava, REFERENCE.md section 5), then per layer by a power-of-two ``scale``
(largest weight mantissa in [64, 127]) and rounded; ``vThMant = round(v_th * scale)``; the scale is
kept in the layer's HDF5 attribute ``spikeattn_scale``. CUBA fires on ``v > vth`` (ours ``>=``) and
resets to 0, so soft reset and ``v_reset != 0`` are not exportable; netx has no pooling or residuals.
A conv-first network gets an ``input`` layer (netx needs one to know the conv's input shape) that
relays binary spikes: it adds one time step and expects 0/1 inputs. A dense-first network is fed
directly (a leading Flatten is implicit: the reader flattens input into the first Dense).

This writes the format; nothing here runs it (lava-dl is not a dependency: torch 2.3, multi-GB).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from spikeattn.export.graph import NotExportable, build_graph, fold_batchnorm
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF

__all__ = ["to_netx"]

SYNAPSES = ("linear", "conv2d")
OP_WHY = {"maxpool2d": "netx has no pooling layer", "avgpool2d": "netx has no pooling layer"}


def _type(g, name: str):
    g.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _tau_steps(attrs: dict) -> float | None:
    """LIF: tau; PLIF: 1/k (the IR holds k = sigmoid(w)); IF: None (no leak)."""
    if attrs["mode"] == CHARGE_IF:
        return None
    return float(attrs["decay"]) if attrs["mode"] == CHARGE_LIF else 1.0 / float(attrs["decay"])


def _neuron_params(attrs: dict, scale: float) -> dict:
    tau = _tau_steps(attrs)
    return {"type": "CUBA", "iDecay": 4096, "vDecay": 0 if tau is None else int(round(4096 / tau)),
            "vThMant": int(round(attrs["v_th"] * scale)), "refDelay": 1, "gradedSpike": False}


def _input_gain(attrs: dict) -> float:
    """Factor on the synaptic input: ``1/tau`` with decay_input (our charge divides X by tau)."""
    tau = _tau_steps(attrs)
    return 1.0 / tau if tau is not None and attrs["decay_input"] else 1.0


def _quantize(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    peak = float(np.abs(w).max())
    scale = 2.0 ** np.floor(np.log2(127.0 / peak)) if peak > 0 else 1.0   # largest mantissa in [64, 127]
    return np.round(w * scale).astype(np.int32), np.round(b * scale).astype(np.int32), float(scale)


def _chain(graph: dict, named: dict) -> list[tuple]:
    """``[(synapse node, neuron node)]`` plus flatten markers; NotExportable for anything netx lacks."""
    nodes, problems, blocks, i = graph["nodes"][1:], [], [], 0
    while i < len(nodes):
        n = nodes[i]
        if n["op"] == "reshape":
            blocks.append(("flatten", n))
            i += 1
            continue
        nxt = nodes[i + 1] if i + 1 < len(nodes) else None
        if n["op"] in SYNAPSES and nxt is not None and nxt["op"] == "lif":
            a = nxt["attrs"]
            if a["v_reset"] is None or a["v_reset"] != 0.0:
                problems.append((nxt["name"], type(named[nxt["name"]]).__name__,
                                 "Loihi's CUBA neuron resets to 0: soft reset and v_reset != 0 cannot be written"))
            blocks.append((n, nxt))
            i += 2
            continue
        why = OP_WHY.get(n["op"], "netx layers are Dense/Conv each followed by a neuron (LIF/IF/PLIF)")
        problems.append((n["name"], type(named[n["name"]]).__name__, why))
        i += 1
    if problems:
        raise NotExportable(problems)
    return blocks


def to_netx(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor) -> str:
    """Write ``model`` as a netx HDF5 file (see the module docstring for the layout and mapping).

    Args:
        model: Sequential of [PerStep(Flatten)], Linear / PerStep(Conv2d, BatchNorm), LIF/IF/PLIF with
            hard reset to 0, ...; BatchNorm in eval mode (folded).
        path: the ``.net`` file to write.
        example_input: ``[T, B, ...]``; fixes the input shape.

    Returns:
        ``str(path)``. Raises NotExportable for pooling, soft reset, v_reset != 0 and lone layers.

    Example:
        >>> to_netx(net.eval(), "out/net.net", x[:, :1])
    """
    from spikeattn._optional import require

    h5py = require("h5py", "to_netx (an HDF5 file)")
    model = fold_batchnorm(model)
    graph, arrays = build_graph(model, example_input)
    named = dict(model.named_modules())
    blocks = _chain(graph, named)
    in_shape = graph["nodes"][0]["shape"]
    first = next(b for b in blocks if b[0] != "flatten")[0]
    if blocks[0][0] == "flatten" and first["op"] == "linear":
        blocks = blocks[1:]    # the reader flattens the input into a first Dense itself
    with h5py.File(path, "w") as f:
        layers, i = f.create_group("layer"), 0
        if first["op"] == "conv2d":
            g = layers.create_group("0")
            _type(g, "input")
            g.create_dataset("shape", data=np.array(in_shape, np.int64))
            for k, v in {"type": "CUBA", "iDecay": 4096, "vDecay": 4096, "vThMant": 0, "refDelay": 1,
                         "gradedSpike": False}.items():
                g.create_dataset(f"neuron/{k}", data=v)
            i = 1
        for block in blocks:
            g = layers.create_group(str(i))
            i += 1
            if block[0] == "flatten":
                _type(g, "flatten")
                g.create_dataset("shape", data=np.array(block[1]["shape"], np.int64))
                continue
            syn, neuron = block
            gain = _input_gain(neuron["attrs"])
            w = arrays[syn["params"]["weight"]].astype(np.float64) * gain
            b = arrays[syn["params"]["bias"]].astype(np.float64) * gain if "bias" in syn["params"] \
                else np.zeros(w.shape[0])
            w, b, scale = _quantize(w, b)
            g.attrs["spikeattn_scale"] = scale
            g.attrs["spikeattn_module"] = syn["name"]
            g.create_dataset("shape", data=np.array(syn["shape"], np.int64))
            if syn["op"] == "linear":
                _type(g, "dense")
                g.create_dataset("inFeatures", data=w.shape[1])
                g.create_dataset("outFeatures", data=w.shape[0])
            else:
                _type(g, "conv")
                a = syn["attrs"]
                g.create_dataset("inChannels", data=w.shape[1])
                g.create_dataset("outChannels", data=w.shape[0])
                g.create_dataset("kernelSize", data=np.array(w.shape[2:], np.int64))
                g.create_dataset("stride", data=np.array(a["stride"], np.int64))
                g.create_dataset("padding", data=np.array(a["padding"], np.int64))
                g.create_dataset("dilation", data=np.array([1, 1], np.int64))
                g.create_dataset("groups", data=1)
            g.create_dataset("weight", data=w)
            g.create_dataset("bias", data=b)
            for k, v in _neuron_params(neuron["attrs"], scale).items():
                g.create_dataset(f"neuron/{k}", data=v)
    return str(path)
