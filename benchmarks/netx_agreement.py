"""netx files of the five issue-14 networks run by lava-dl 0.6.0 (``.venv-netx``): per-layer spike
agreement with torch after netx's delay alignment -> benchmarks/results/netx_agreement.json.

    .venv/bin/python benchmarks/netx_agreement.py [--n 16] [--T 8]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/export/netx_nets.py

from spikeattn.export import to_netx  # noqa: E402
from spikeattn.export.netx import netx_reference, run_netx  # noqa: E402
from tests.export.helpers import torch_layers  # noqa: E402
from tests.export.netx_nets import NETS, rate_input  # noqa: E402
from tests.export.test_netx_lavadl import neuron_paths  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "netx_agreement.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="Fashion-MNIST test images")
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    x = rate_input(args.n, args.T)
    record = {"command": f"python benchmarks/netx_agreement.py --n {args.n} --T {args.T}",
              "date": datetime.date.today().isoformat(), "lava_dl": "0.6.0 (netx.hdf5.Network, torch stubbed)",
              "input": "first N Fashion-MNIST test images, rate-coded spikes (pixel intensity = probability)",
              "alignment": "block k's spikes shifted back k+1 steps; each block's bias switched on at its first input",
              "agreement": "vs the torch model with the file's 8-bit weights and thresholds (netx_reference)",
              "agreement_float_model": "vs the float torch model the file was exported from",
              "networks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in NETS.items():
            net = make()
            path = to_netx(net, Path(tmp) / f"{name}.net", x)
            t0 = time.perf_counter()
            blocks = run_netx(path, x.numpy(), timeout=1800)
            seconds = time.perf_counter() - t0
            ref, orig = torch_layers(netx_reference(net, x), x), torch_layers(net, x)
            layers = {}
            for p, got in zip(neuron_paths(net), blocks):
                want, float_model = ref[p].numpy(), orig[p].numpy()
                got = got.reshape(want.shape)
                layers[p] = {"agreement": float((got == want).mean()),
                             "agreement_float_model": float((got == float_model).mean()), "values": int(want.size),
                             "torch_rate": float(want.mean()), "netx_rate": float(got.mean())}
            record["networks"][name] = {"layers": layers, "seconds": round(seconds, 1),
                                        "min_agreement": min(v["agreement"] for v in layers.values()),
                                        "min_agreement_float_model": min(v["agreement_float_model"] for v in layers.values())}
            print(name, {k: (round(v["agreement"], 5), round(v["agreement_float_model"], 5)) for k, v in layers.items()},
                  f"{seconds:.0f} s")
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
