"""Which NIR readers load which of our exported networks with identical spikes (docs/export.md's table).

For every network, ``to_nir`` writes the graph (default dt = 1e-4, also in the neurons' metadata);
each reader loads it and runs the same Fashion-MNIST input step by step; the spikes of every neuron
layer at every step are compared with ours (torch, BatchNorm folded). Readers: ``from_nir`` (ours),
snntorch 1.0 (``import_from_nir``), norse 1.1 (``norse.torch.from_nir(g, dt=file's dt)``), sinabs 3.1
(``sinabs.from_nir``, ``[B*T, ...]`` input); nirtorch 2.6's generic ``nir_to_torch`` has no neuron
map, so its default map is checked node by node on the static nodes (each node's recorded input
from our run -> its output). A reader that is not installed is recorded as such.

    .venv/bin/python benchmarks/nir_readers.py --json benchmarks/results/nir_readers.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import traceback

import torch
from torch import nn

import _common
import spikeattn.neuron as N
from spikeattn.data import fashion_mnist
from spikeattn.export import PerStep, fold_batchnorm, from_nir, to_nir

T = 8
READERS = ("spikeattn", "snntorch", "norse", "sinabs")
# Where dt is not where the reader looks: a file written with dt = 1e-3 (snntorch assumes 1e-4), and
# norse without dt= (its default 1e-3) on our default 1e-4 file.
DT_VARIANTS = {"snntorch, file dt=1e-3": ("snntorch", 1e-3), "norse, dt= not passed": ("norse-default-dt", 1e-4)}


def _scaled(net: nn.Module, gain: float) -> nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(gain)
    return net.eval()


def _mlp(neuron, flatten=False):
    torch.manual_seed(0)
    layers = [PerStep(nn.Flatten())] if flatten else []
    return _scaled(nn.Sequential(*layers, nn.Linear(784, 64), neuron(), nn.Linear(64, 10), neuron()), 3.0)


def _conv(neuron):
    torch.manual_seed(1)
    net = nn.Sequential(
        PerStep(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)), neuron(),
        PerStep(nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8)), neuron(),
        PerStep(nn.AvgPool2d(3, stride=2, padding=1), nn.Flatten()), nn.Linear(72, 10), neuron())
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        net[5].weight.mul_(4.0)
    return _scaled(net, 4.0)


NETWORKS = {   # name -> (builder, flat input)
    "mlp LIF hard, decay_input": (lambda: _mlp(lambda: N.LIF(tau=2.0)), True),
    "mlp LIF hard, decay_input=False": (lambda: _mlp(lambda: N.LIF(tau=3.0, v_th=0.7, decay_input=False)), True),
    "mlp PLIF hard, decay_input=False": (lambda: _mlp(lambda: N.PLIF(init_tau=2.5, decay_input=False)), True),
    "mlp LIF v_reset=-0.3": (lambda: _mlp(lambda: N.LIF(tau=1.5, v_th=1.2, v_reset=-0.3)), True),
    "mlp LIF soft reset": (lambda: _mlp(lambda: N.LIF(tau=2.0, v_reset=None)), True),
    "mlp IF hard": (lambda: _mlp(lambda: N.IF()), True),
    "mlp IF soft": (lambda: _mlp(lambda: N.IF(v_reset=None)), True),
    "mlp with Flatten (image input)": (lambda: _mlp(lambda: N.LIF(tau=2.0), flatten=True), False),
    "conv + BN + AvgPool2d (padded) + Flatten": (lambda: _conv(lambda: N.LIF(tau=2.0)), False),
}


def _hooked_run(net: nn.Module, run, names: list[str]) -> dict[str, list]:
    """Run ``run()`` with hooks on the submodules whose last name part is a sanitized NIR name."""
    want = {n.replace(".", "_"): n for n in names}
    out, hooks = {}, []
    for path, m in net.named_modules():
        key = path.split(".")[-1]
        if key in want and want[key] not in out:
            out[want[key]] = []
            hooks.append(m.register_forward_hook(
                lambda mod, a, y, name=want[key]: out[name].append(y[0] if isinstance(y, tuple) else y)))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return out


def _run_stepwise(net, x, names, stateful_call):
    def run():
        state = None
        for xt in x:
            state = stateful_call(net, xt, state)
    got = _hooked_run(net, run, names)
    return {k: torch.stack(v) for k, v in got.items() if v}


def read(reader: str, g, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """``{NIR neuron name: [T, B, ...] spikes}`` from ``reader`` on ``x [T, B, ...]``."""
    if reader == "spikeattn":
        with torch.no_grad():
            return {k: v for k, v in from_nir(g).trace(x).items() if k in names}
    if reader == "snntorch":
        from snntorch.import_nir import import_from_nir
        return _run_stepwise(import_from_nir(g), x, names, lambda net, xt, s: net(xt))
    if reader in ("norse", "norse-default-dt"):
        import norse.torch
        # the convention: dt from the file (graph or neuron metadata)
        net = norse.torch.from_nir(g, dt=float(g.metadata["dt"])) if reader == "norse" else norse.torch.from_nir(g)
        return _run_stepwise(net, x, names, lambda net, xt, s: net(xt, s)[1])
    if reader == "sinabs":
        import sinabs
        t, b = x.shape[:2]
        net = sinabs.from_nir(g, batch_size=b)
        got = _hooked_run(net, lambda: net(x.transpose(0, 1).reshape(t * b, *x.shape[2:])), names)
        return {k: v[0].reshape(b, t, *v[0].shape[1:]).transpose(0, 1) for k, v in got.items() if v}
    raise ValueError(reader)


def _input(images, batch: int, flat: bool) -> torch.Tensor:
    x = images[:batch].unsqueeze(0).repeat(T, 1, 1, 1, 1)   # (T, B, 1, 28, 28)
    return x.flatten(2) if flat else x


def compare(model, flat: bool, reader: str, batch: int, images, dt: float = 1e-4) -> dict:
    x = _input(images, batch, flat)
    g = to_nir(model, x[:, :1], dt=dt)
    names = [n for n, v in g.nodes.items() if type(v).__name__ in ("LIF", "IF")]
    with torch.no_grad():
        ref = from_nir(g).trace(x)   # == torch's spikes bit for bit (tests/export/test_nir_import.py)
    row = {"reader": reader, "batch": batch}
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # snntorch prints warnings per node
            got = read(reader, g, x, names)
    except Exception as e:   # noqa: BLE001  a reader's failure is the measurement
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return row | {"status": "error", "error": f"{type(e).__name__}: {str(e)[:160]}",
                      "where": f"{tb.filename.split('site-packages/')[-1]}:{tb.lineno}"}
    per_layer = {}
    for n in names:
        if n not in got:
            per_layer[n] = None
            continue
        a, b = ref[n].float(), got[n].float().reshape(ref[n].shape)
        per_layer[n] = float((a == b).float().mean())
    equal = all(v == 1.0 for v in per_layer.values())
    return row | {"status": "equal" if equal else "differs", "spikes_equal": per_layer,
                  "min_equal_fraction": min((v for v in per_layer.values() if v is not None), default=None)}


def nirtorch_static(model, flat: bool, images, batch: int) -> list[dict]:
    """nirtorch 2.6's DEFAULT_MAP (no neuron map) node by node: each static node of our graph on the input
    our run gave it, per step ``[B, ...]``, against our node's output."""
    from nirtorch.nir_interpreter import DEFAULT_MAP

    x = _input(images, batch, flat)
    g = to_nir(model, x[:, :1])
    with torch.no_grad():
        ours = from_nir(g).trace(x)
    prev = {b: a for a, b in g.edges}
    rows = []
    for name, node in g.nodes.items():
        kind = type(node).__name__
        if kind in ("Input", "Output", "LIF", "IF"):
            continue
        row = {"network_node": name, "kind": kind, "batch": batch}
        try:
            torch.manual_seed(123)
            m = DEFAULT_MAP[type(node)](node)
            with torch.no_grad():
                y = torch.stack([m(xt) for xt in ours[prev[name]]])
            if y.shape != ours[name].shape:
                rows.append(row | {"status": "wrong shape", "shape": list(y.shape), "expected": list(ours[name].shape)})
                continue
            err = float((y - ours[name]).abs().max())
            rows.append(row | {"status": "equal" if err <= 1e-5 else "differs", "max_abs_error": err})
        except Exception as e:   # noqa: BLE001  a reader's failure is the measurement
            rows.append(row | {"status": "error", "error": f"{type(e).__name__}: {str(e)[:160]}"})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="benchmarks/results/nir_readers.json")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)   # norse logs a warning per node with r != 1
    images = fashion_mnist("test", limit=6).images
    readers = [r for r in READERS if _common.version(r if r != "spikeattn" else "spikeattn") is not None]
    runs = []
    for name, (build, flat) in NETWORKS.items():
        model = build()
        model = fold_batchnorm(model)
        for reader in readers:
            for batch in (1, 6):
                r = {"network": name} | compare(model, flat, reader, batch, images)
                runs.append(r)
                print(f"{name:42s} {reader:9s} B={batch}  {r['status']:8s} {r.get('min_equal_fraction', '')} {r.get('error', '')[:80]} {r.get('where', '')}")
    for label, (reader, dt) in DT_VARIANTS.items():
        if _common.version(reader.split("-")[0]) is None:
            continue
        build, flat = NETWORKS["mlp LIF hard, decay_input"]
        r = {"network": "mlp LIF hard, decay_input", "variant": label} | compare(fold_batchnorm(build()), flat, reader, 6, images, dt)
        runs.append(r)
        print(f"{label:42s} {r['status']:8s} {r.get('min_equal_fraction', '')}")
    static = []
    if _common.version("nirtorch") is not None:
        for name in ("mlp with Flatten (image input)", "conv + BN + AvgPool2d (padded) + Flatten"):
            build, flat = NETWORKS[name]
            for batch in (1, 6):
                static += [{"network": name} | r for r in nirtorch_static(fold_batchnorm(build()), flat, images, batch)]
        for r in static:
            print(f"nirtorch {r['network_node']:8s} {r['kind']:10s} B={r['batch']} {r['status']} {r.get('max_abs_error', r.get('shape', ''))} {r.get('error', '')[:80]}")
    data = {"benchmark": "nir_readers", "T": T, "dt": 1e-4, "input": "Fashion-MNIST test images 0-5, direct encoding",
            "environment": _common.environment(("torch", "nir", "nirtorch", "snntorch", "norse", "sinabs", "spikeattn")),
            "not_installed": [r for r in READERS if r not in readers], "runs": runs, "nirtorch_default_map": static,
            "command": "python benchmarks/nir_readers.py --json " + args.json}
    _common.write_json(args.json, data)
    print("wrote", args.json)


if __name__ == "__main__":
    main()
