"""Command-line entry of the Lava runtime (run it with .venv-lava's Python 3.10):

    python hardware/lava/run.py ARTIFACT --input x.npy --out y.npz [--fixed-point] [--record-all]
                                [--plan {library,per_channel}] [--weight-synapses {1,2}] [--library]

Reads ``x [T, B, ...]``, runs the artifact's graph in Lava (Loihi2SimCfg, floating or fixed
point) and writes ``y.npz`` with ``output`` (``[T, B, ...]``) and, with --record-all,
``layer/<node>`` for every node. Errors go to stderr with exit status 2 (bad artifact or input)
or 1 (anything Lava raised). Imports lava and numpy only. Fixed point: ``--plan`` (quantize.py:
``library``, the default, or ``per_channel``) and ``--weight-synapses`` (8-bit synapses per
connection; default: the plan's) choose the numbers; ``--library`` runs every node Lava's process
library can express as Lava's own Dense/Conv/LIF processes (library.py), with the same numbers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback


def main(argv=None) -> int:
    import quantize  # numpy only: the plans' names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--input", required=True, help=".npy file [T, B, ...] (float32)")
    ap.add_argument("--out", required=True, help=".npz file to write")
    ap.add_argument("--fixed-point", action="store_true")
    ap.add_argument("--record-all", action="store_true")
    ap.add_argument("--plan", choices=quantize.PLANS, default=quantize.PLANS[0], help="fixed point: the numbers")
    ap.add_argument("--weight-synapses", type=int, choices=(1, 2), default=None,
                    help="fixed point: 8-bit synapses per connection off the library (default: the plan's)")
    ap.add_argument("--library", action="store_true", help="fixed point: Lava's own processes where they exist")
    args = ap.parse_args(argv)

    import numpy as np

    import artifact

    try:
        graph, weights = artifact.load(args.artifact)
        x = np.load(args.input, allow_pickle=False).astype(np.float32)
        artifact.check_input(graph, x)
        if args.library and not args.fixed_point:
            raise ValueError("--library needs --fixed-point")
        if args.library and args.plan != "library":
            raise ValueError(f"--library needs --plan library (Lava's processes cannot hold plan {args.plan!r})")
    except (ValueError, OSError) as e:
        print(f"lava runtime: {e}", file=sys.stderr)
        return 2
    import network  # imports lava: after the cheap checks

    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="lava-rec-") as rec:
            traces = network.run(graph, weights, x, args.fixed_point, rec, args.record_all, args.weight_synapses,
                                 library=args.library, plan=args.plan)
    except Exception:  # any Lava failure: report it whole, the caller shows it
        traceback.print_exc()
        return 1
    out = {"output": traces[graph["output"]], "seconds": np.float64(time.perf_counter() - t0)}
    if network.LIBRARY_KEY in traces:
        out[network.LIBRARY_KEY] = traces.pop(network.LIBRARY_KEY)
    if args.record_all:
        out.update({f"layer/{k}": v for k, v in traces.items()})
    artifact.save_npz(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
