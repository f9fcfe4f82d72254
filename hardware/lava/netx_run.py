"""Run a netx HDF5 file with lava-dl's own loader (``lava.lib.dl.netx.hdf5.Network``) in Lava
(run it with .venv-netx's Python 3.10: ``make netx-env``):

    python hardware/lava/netx_run.py NET.net --input x.npy --out y.npz

``x`` is ``[T, B, ...]`` binary spikes in torch layout (``C, H, W`` or flat); each sample is one
Lava run of the network as netx builds it, under ``Loihi2SimCfg(select_tag="fixed_pt")``. Two
things of netx's timing are accounted for here, and only here (the file is the unmodified format):

- delay: block ``k`` (0-based) answers input step ``t`` at step ``t + k + 1`` (each block's Dense
  or Conv synapse holds one step); its recorded spikes are shifted back by ``k + 1``;
- bias: a netx neuron applies its bias from step 0, ``k + 1`` steps before its first input
  arrives; the run starts with every bias at 0 and switches block ``k``'s bias on (``Var.set``)
  at the step its input first arrives, as the exported torch model's neurons see it.

``y.npz`` holds ``layer/<k>`` ``[T, B, ...]`` (torch layout) for every block. Imports lava,
lava-dl's netx and numpy only (``torch`` there is netx_stub's stand-in).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback

import numpy as np


def _torch_layout(trace: np.ndarray, shape: tuple) -> np.ndarray:
    """``[T, *lava shape]`` -> ``[T, *torch shape]`` (Lava's ``W, H, C`` is torch's ``C, H, W`` reversed)."""
    return trace.transpose(0, *range(len(shape), 0, -1)) if len(shape) == 3 else trace


def run_sample(path: str, x: np.ndarray, record_dir: str) -> list[np.ndarray]:
    """One sample ``x [T, *input shape]`` through the file; ``[T, *block shape]`` spikes per block."""
    from lava.lib.dl.netx import hdf5
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    import processes as P

    net = hdf5.Network(net_config=path)
    blocks = net.layers
    t_steps, total = x.shape[0], x.shape[0] + len(blocks)
    inp = tuple(net.inp.shape)
    data = x.reshape(t_steps, *inp) if len(inp) == 1 else x.transpose(0, *range(x.ndim - 1, 0, -1))
    source = P.Source(shape=inp, data=data.astype(np.int64))
    source.s_out.connect(net.inp)
    recorders, biases = [], []
    for k, block in enumerate(blocks):
        shape = tuple(block.out.shape)
        spec = {"name": f"block{k}", "op": "reshape", "runner_pid": os.getpid(), "attrs": {"shape": list(shape[1:])},
                "weights": {}, "quant": None, "T": total, "start": 0, "lags": [0], "in_shapes": [shape],
                "out_shape": shape, "total_steps": total, "record": record_dir}
        rec = P.Unary(in_shape=shape, out_shape=shape, spec=spec)
        block.out.connect(rec.a_in0)
        recorders.append(rec)
        bias = block.neuron.bias_mant
        biases.append(np.array(bias.init, np.int32))
        bias.init = np.zeros(bias.shape, np.int32)     # switched on when the block's input arrives
    model_map = {p: P.MODELS[(type(p), "fixed")] for p in (source, *recorders)}
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)
    try:
        for k, block in enumerate(blocks):
            # block k's synapse sends its first real input at step k + 2: set the bias after k + 1 steps
            net.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            if biases[k].any():
                block.neuron.bias_mant.set(biases[k])
        net.run(condition=RunSteps(num_steps=total - len(blocks)), run_cfg=cfg)
    finally:
        net.stop()
    out = []
    for k, block in enumerate(blocks):
        trace = np.load(os.path.join(record_dir, f"block{k}.npy"))[k + 1:k + 1 + t_steps]
        out.append(_torch_layout(trace, tuple(block.out.shape)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net")
    ap.add_argument("--input", required=True, help=".npy [T, B, ...] binary spikes")
    ap.add_argument("--out", required=True, help=".npz to write")
    args = ap.parse_args(argv)
    import artifact

    x = np.load(args.input, allow_pickle=False)
    if x.ndim < 3 or not np.isin(x, (0, 1)).all():
        print("netx runtime: input must be [T, B, ...] binary spikes", file=sys.stderr)
        return 2
    try:
        runs = []
        for b in range(x.shape[1]):
            with tempfile.TemporaryDirectory(prefix="netx-rec-") as rec:
                runs.append(run_sample(args.net, x[:, b], rec))
    except Exception:  # any Lava/netx failure: report it whole, the caller shows it
        traceback.print_exc()
        return 1
    out = {f"layer/{k}": np.stack([r[k] for r in runs], axis=1) for k in range(len(runs[0]))}
    artifact.save_npz(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
