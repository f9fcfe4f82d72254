"""``to_netx``: a feed-forward Dense/Conv + LIF network -> lava-dl's netx HDF5 file, written with h5py.

Layout (as lava-dl's slayer blocks write it and ``lava.lib.dl.netx.hdf5.Network`` reads it):
``/layer/<i>/`` in run order, each with ``type`` (``(1,)`` bytes: ``input``/``dense``/``conv``/``flatten``),
``shape`` (the layer's neurons, CHW), and for synaptic layers ``weight`` (integer mantissas,
``[out, in]`` or ``[out, in, kh, kw]``), ``bias`` (per output channel/feature), ``inFeatures`` /
``outFeatures`` or ``inChannels``/``outChannels``/``kernelSize``/``stride``/``padding``/``dilation``/
``groups``, and ``neuron/{type: CUBA, iDecay, vDecay, vThMant, refDelay, gradedSpike}``.

Mapping (fixed point, Loihi CUBA): ``iDecay = 4096`` (the current holds only this step's input),
``vDecay = round(4096 / tau_steps)`` (0 for IF), weights and bias multiplied by ``1/tau_steps`` when
``decay_input`` (as for Lava, REFERENCE.md section 5), then per layer by a ``scale`` (by default
a power of two, largest weight mantissa in [64, 127]; other rules in ``netx_grid.choose_scale``) and
rounded; ``vThMant = round(v_th * scale)``; the scale is kept in the layer's HDF5 attribute
``spikeattn_scale``. CUBA fires on ``v > vth`` (ours ``>=``) and resets to 0, so soft reset and
``v_reset != 0`` are not exportable; netx has no pooling or residuals. Weights are netx's 8-bit
signed mantissas (``|m| <= 127``). A model from ``quantize_for_netx`` (netx_qat.py) is written with
exactly the numbers it computes with. Average pooling (stride = kernel, no
padding, tiling its input) is linear, so it is folded into the next layer: a Conv's kernel repeated
over each pooling window (stride and padding times the window), a Linear's columns spread over it,
both divided by the window size. A conv-first network gets an ``input`` layer with only its
``shape`` (no neuron): netx then reads the input shape from it and the first Conv block's own input
port takes the spikes (an ``input`` layer *with* a neuron becomes netx's Input block, whose input
port is left unconnected). A dense-first network is fed directly (a leading Flatten is implicit).

``run_netx`` runs a file with lava-dl 0.6.0's own ``netx.hdf5.Network`` in ``.venv-netx``
(``make netx-env``; lava-dl is not a dependency of this package: it declares torch 2.3).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from spikeattn._paths import hardware_dir
from spikeattn.export.graph import NotExportable, build_graph, fold_batchnorm
from spikeattn.export.lava import _run_group
from spikeattn.export.netx_grid import NetxGrid, choose_scale, round_to_grid
from spikeattn.functional.neuron import CHARGE_IF, CHARGE_LIF

__all__ = ["to_netx", "run_netx", "netx_reference", "NetxError"]

SYNAPSES = ("linear", "conv2d")
OP_WHY = {"maxpool2d": "netx has no pooling layer and max pooling is not linear (average pooling is folded)"}


class NetxError(RuntimeError):
    """The netx environment is missing, timed out, or lava-dl failed (the message carries its stderr)."""


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


def _grid_scale(module: nn.Module, factor: float) -> float | None:
    """The scale ``quantize_for_netx`` fixed on ``module``'s weight (None if it has none)."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    grids = [p for p in module.parametrizations.weight if isinstance(p, NetxGrid)]
    if not grids:
        return None
    if not np.isclose(grids[-1].factor, factor, rtol=1e-12):
        raise ValueError(f"module {type(module).__name__} was put on the netx grid with factor {grids[-1].factor:g} "
                         f"(1/tau, 1/pooling window) but exports with {factor:g}: its neuron or pooling changed "
                         "after quantize_for_netx")
    return grids[-1].scale


def _chain(graph: dict, named: dict) -> list[tuple]:
    """``[(synapse node, neuron node)]`` plus flatten markers; NotExportable for anything netx lacks."""
    nodes, problems, blocks, i, pool = graph["nodes"][1:], [], [], 0, None
    shapes = {n["name"]: n["shape"] for n in graph["nodes"]}
    while i < len(nodes):
        n = nodes[i]
        if n["op"] == "avgpool2d":
            why = _pool_why(n["attrs"], shapes[n["inputs"][0]])
            if why:
                problems.append((n["name"], type(named[n["name"]]).__name__, why))
            pool = (n["attrs"]["kernel"], shapes[n["inputs"][0]])
            i += 1
            continue
        if n["op"] == "reshape":
            blocks.append(("flatten", {**n, "shape": [int(np.prod(pool[1]))] if pool else n["shape"]}))
            i += 1
            continue
        nxt = nodes[i + 1] if i + 1 < len(nodes) else None
        if n["op"] in SYNAPSES and nxt is not None and nxt["op"] == "lif":
            a = nxt["attrs"]
            if a["v_reset"] is None or a["v_reset"] != 0.0:
                problems.append((nxt["name"], type(named[nxt["name"]]).__name__,
                                 "Loihi's CUBA neuron resets to 0: soft reset and v_reset != 0 cannot be written"))
            blocks.append((n, nxt, pool))
            pool = None
            i += 2
            continue
        why = OP_WHY.get(n["op"], "netx layers are Dense/Conv each followed by a neuron (LIF/IF/PLIF)")
        problems.append((n["name"], type(named[n["name"]]).__name__, why))
        i += 1
    if problems:
        raise NotExportable(problems)
    return blocks


def _pool_why(a: dict, in_shape: list) -> str | None:
    if a["stride"] != a["kernel"] or a["padding"] != [0, 0]:
        return "average pooling folds into the next layer only with stride = kernel and no padding"
    if in_shape[1] % a["kernel"][0] or in_shape[2] % a["kernel"][1]:
        return f"average pooling folds into the next layer only when its windows tile the input {in_shape}"
    return None


def _fold_pool(syn: dict, w: np.ndarray, pool) -> tuple[np.ndarray, dict]:
    """Weights and conv attributes of ``syn`` applied to the unpooled input (avg pool folded in)."""
    if pool is None:
        return w, syn.get("attrs", {})
    (kh, kw), (c, h, wd) = pool
    if syn["op"] == "linear":   # columns over the pooled map -> over the input map, / window
        w = w.reshape(w.shape[0], c, h // kh, wd // kw).repeat(kh, axis=2).repeat(kw, axis=3)
        return w.reshape(w.shape[0], -1) / (kh * kw), {}
    a = syn["attrs"]            # conv after pooling = one conv with the kernel spread over each window
    w = w.repeat(kh, axis=2).repeat(kw, axis=3) / (kh * kw)
    return w, {"stride": [a["stride"][0] * kh, a["stride"][1] * kw],
               "padding": [a["padding"][0] * kh, a["padding"][1] * kw]}


def to_netx(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor, scale: str = "pow2") -> str:
    """Write ``model`` as a netx HDF5 file (see the module docstring for the layout and mapping).

    Args:
        model: Sequential of [PerStep(Flatten)], Linear / PerStep(Conv2d, BatchNorm, AvgPool2d), LIF/IF/PLIF
            with hard reset to 0, ...; BatchNorm in eval mode (folded), average pooling folded.
        path: the ``.net`` file to write.
        example_input: ``[T, B, ...]``; fixes the input shape.
        scale: how each layer's weight scale is chosen (``netx_grid.choose_scale``: ``"pow2"``,
            ``"full"`` or ``"mse"``); a layer ``quantize_for_netx`` put on the grid keeps its own.

    Returns:
        ``str(path)``. Raises NotExportable for max pooling, average pooling that does not tile
        its input, soft reset, v_reset != 0 and lone layers.

    Example:
        >>> to_netx(net.eval(), "out/net.net", x[:, :1])
    """
    from spikeattn._optional import require

    h5py = require("h5py", "to_netx (an HDF5 file)")
    in_shape, layers_ = _netx_layers(model, example_input, scale)
    with h5py.File(path, "w") as f:
        layers, i = f.create_group("layer"), 0
        if layers_[0]["op"] == "conv2d":   # shape only: the conv block's own input port takes the spikes
            g = layers.create_group("0")
            _type(g, "input")
            g.create_dataset("shape", data=np.array(in_shape, np.int64))
            i = 1
        for layer in layers_:
            g = layers.create_group(str(i))
            i += 1
            if layer["op"] == "flatten":
                _type(g, "flatten")
                g.create_dataset("shape", data=np.array(layer["shape"], np.int64))
                continue
            w, a = layer["weight"], layer["attrs"]
            g.attrs["spikeattn_scale"] = layer["scale"]
            g.attrs["spikeattn_module"] = layer["module"]
            g.create_dataset("shape", data=np.array(layer["shape"], np.int64))
            if layer["op"] == "linear":
                _type(g, "dense")
                g.create_dataset("inFeatures", data=w.shape[1])
                g.create_dataset("outFeatures", data=w.shape[0])
            else:
                _type(g, "conv")
                g.create_dataset("inChannels", data=w.shape[1])
                g.create_dataset("outChannels", data=w.shape[0])
                g.create_dataset("kernelSize", data=np.array(w.shape[2:], np.int64))
                g.create_dataset("stride", data=np.array(a["stride"], np.int64))
                g.create_dataset("padding", data=np.array(a["padding"], np.int64))
                g.create_dataset("dilation", data=np.array([1, 1], np.int64))
                g.create_dataset("groups", data=1)
            g.create_dataset("weight", data=w)
            g.create_dataset("bias", data=layer["bias"])
            for k, v in layer["neuron_params"].items():
                g.create_dataset(f"neuron/{k}", data=v)
    return str(path)


def _netx_layers(model: nn.Module, example_input: torch.Tensor, scale_rule: str = "pow2") -> tuple[list, list[dict]]:
    """``(input shape, layers)``: every flatten and synapse + neuron layer as written, in order.

    A layer's scale is the one ``quantize_for_netx`` fixed on it, else ``choose_scale(.., scale_rule)``.
    """
    model = fold_batchnorm(model)
    graph, arrays = build_graph(model, example_input)
    named = dict(model.named_modules())
    blocks = _chain(graph, named)
    first = next(b for b in blocks if b[0] != "flatten")[0]
    if blocks[0][0] == "flatten" and first["op"] == "linear":
        blocks = blocks[1:]    # the reader flattens the input into a first Dense itself
    out = []
    for block in blocks:
        if block[0] == "flatten":
            out.append({"op": "flatten", "shape": block[1]["shape"]})
            continue
        syn, neuron, pool = block
        gain = _input_gain(neuron["attrs"])
        w, attrs = _fold_pool(syn, arrays[syn["params"]["weight"]].astype(np.float64), pool)
        b = arrays[syn["params"]["bias"]].astype(np.float64) if "bias" in syn["params"] else np.zeros(w.shape[0])
        factor = gain / (1 if pool is None else pool[0][0] * pool[0][1])    # file weight = w * factor * scale
        w, b = w * gain, b * gain                                          # w holds the 1/window already
        scale = _grid_scale(named[syn["name"]], factor) or choose_scale(w, scale_rule)
        w, b = round_to_grid(w, scale), np.round(b * scale).astype(np.int32)
        out.append({"op": syn["op"], "shape": syn["shape"], "weight": w, "bias": b, "scale": scale, "gain": gain,
                    "factor": factor, "attrs": attrs, "pool": pool, "module": syn["name"], "neuron": neuron["name"],
                    "neuron_params": _neuron_params(neuron["attrs"], scale)})
    return graph["nodes"][0]["shape"], out


def netx_reference(model: nn.Module, example_input: torch.Tensor, scale: str = "pow2") -> nn.Module:
    """The torch model with the numbers a ``to_netx`` file holds: BatchNorm folded, each layer's
    weights and bias on its 8-bit netx grid and its threshold at ``(vThMant + 1/64) / scale``
    (netx fires on ``v > vThMant << 6``, i.e. from one 1/64 step above; torch fires on ``>=``).

    What stays different from netx is its arithmetic (12-bit decays rounding down, 24-bit state):
    compare netx with this model to see the runtime, and with the original to see the 8-bit cost.
    """
    ref = fold_batchnorm(model)
    named = dict(ref.named_modules())
    with torch.no_grad():
        for layer in _netx_layers(model, example_input, scale)[1]:
            if layer["op"] == "flatten":
                continue
            real = layer["scale"] * layer["gain"]
            w = layer["weight"] / real
            if layer["pool"] is not None:     # undo the fold: one tap per pooling window, times its size
                (kh, kw), (c, h, wd) = layer["pool"]
                if layer["op"] == "conv2d":
                    w = w[:, :, ::kh, ::kw] * (kh * kw)
                else:
                    w = w.reshape(w.shape[0], c, h // kh, kh, wd // kw, kw)[:, :, :, 0, :, 0]
                    w = w.reshape(w.shape[0], -1) * (kh * kw)
            syn = named[layer["module"]]
            _tensor(syn, "weight").copy_(torch.as_tensor(w, dtype=syn.weight.dtype).reshape(syn.weight.shape))
            if syn.bias is not None:
                _tensor(syn, "bias").copy_(torch.as_tensor(layer["bias"] / real, dtype=syn.bias.dtype))
            named[layer["neuron"]].v_th = (layer["neuron_params"]["vThMant"] + 1 / 64) / layer["scale"]
    return ref


def _tensor(module: nn.Module, role: str) -> torch.Tensor:
    """The stored tensor behind ``module.<role>``: under a netx grid parametrisation (quantize_for_netx)
    its ``original``, which a value already on the grid passes through unchanged. (Removing the
    parametrisation instead would strip it from every deep copy too: they share one injected class.)"""
    if parametrize.is_parametrized(module, role):
        return getattr(module.parametrizations, role).original
    return getattr(module, role)


def netx_python() -> Path:
    """The Python of the netx env: ``$SPIKEATTN_NETX_PYTHON`` or ``<repo>/.venv-netx/bin/python``."""
    env = os.environ.get("SPIKEATTN_NETX_PYTHON")
    return Path(env) if env else hardware_dir().parent / ".venv-netx" / "bin" / "python"


def run_netx(path: str | os.PathLike, input_spikes: np.ndarray, timeout: float = 300) -> list[np.ndarray]:
    """Run a netx file with lava-dl 0.6.0's ``netx.hdf5.Network`` in Lava (``.venv-netx``).

    Args:
        path: a file written by ``to_netx``.
        input_spikes: ``[T, B, *input_shape]`` binary spikes (torch layout).
        timeout: seconds before the subprocess is killed.

    Returns:
        ``[T, B, ...]`` spikes of every netx block (torch layout), aligned to the input steps: block
        ``k``'s one-step-per-layer delay removed and its bias switched on when its input first
        arrives (see hardware/lava/netx_run.py).
    """
    x = np.asarray(input_spikes)
    if x.ndim < 3 or not np.isin(x, (0, 1)).all():
        raise ValueError(f"input_spikes must be binary spikes [T, B, ...], got shape {x.shape} "
                         f"with values {np.unique(x)[:5]}")
    py = netx_python()
    if not py.is_file():
        raise NetxError(f"the netx environment is missing ({py}); build it with `make netx-env`")
    runner = hardware_dir() / "lava" / "netx_run.py"
    with tempfile.TemporaryDirectory(prefix="spikeattn-netx-") as tmp:
        inp, out = os.path.join(tmp, "input.npy"), os.path.join(tmp, "out.npz")
        np.save(inp, x.astype(np.int64))
        returncode, stderr = _run_group([str(py), str(runner), str(path), "--input", inp, "--out", out], tmp, timeout)
        if returncode is None:
            raise NetxError(f"netx did not finish within timeout={timeout} s (killed):\n{stderr}")
        if returncode != 0:
            raise NetxError(f"netx failed (exit status {returncode}):\n{stderr}")
        with np.load(out, allow_pickle=False) as z:
            return [z[f"layer/{k}"] for k in range(len(z.files))]
