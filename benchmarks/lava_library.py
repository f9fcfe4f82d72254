"""The demo Spikformer on Lava's own processes (``run_lava(..., fixed_point=True, library=True)``):
which layers run on Lava's bit-accurate Dense/Conv/LIF models, which stay custom and why, whether
their spikes equal the default run on the project's custom processes (``library=False``, default
arguments), and how the default plan and ``plan="per_channel"`` agree with torch
-> benchmarks/results/lava_library.json (the previous record goes to its ``previous_runs``).

    .venv/bin/python benchmarks/lava_library.py --model runs/libdemo/model.pt --n 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/export helpers

import spikeattn as sa  # noqa: E402
from spikeattn.export.spikformer import fold_spikformer  # noqa: E402
from spikeattn.train.model_file import load_model  # noqa: E402
from tests.export.helpers import fashion_input  # noqa: E402
from tests.export.test_lava_spikformer import neuron_traces  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "lava_library.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a saved Spikformer (the demo's runs/demo/model.pt)")
    ap.add_argument("--n", type=int, default=4, help="Fashion-MNIST test images")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    model, _ = load_model(args.model)
    model.eval()
    x = fashion_input(args.n, model.config.T)
    tmp = tempfile.TemporaryDirectory(prefix="lava-library-")
    art = sa.export.to_lava(model, Path(tmp.name) / "art", x)
    t0 = time.perf_counter()
    _, lib = sa.export.run_lava(art, x.numpy(), fixed_point=True, library=True, return_layers=True, timeout=3600)
    t_lib = time.perf_counter() - t0
    _, own = sa.export.run_lava(art, x.numpy(), fixed_point=True, return_layers=True, timeout=3600)
    _, wide = sa.export.run_lava(art, x.numpy(), fixed_point=True, plan="per_channel", return_layers=True, timeout=3600)
    ref, logits = neuron_traces(fold_spikformer(model), x)
    layers = {}
    for name, want in ref.items():
        row = {"on_lava_library": name in lib.library, "models": lib.library.get(name, "custom"),
               "library_equals_custom_run": bool(np.array_equal(lib[name], own[name])),
               "agreement_with_torch_default_plan": float((lib[name].reshape(want.shape) == want).mean()),
               "agreement_with_torch_per_channel_plan": float((wide[name].reshape(want.shape) == want).mean()),
               "torch_rate": float(want.mean())}
        layers[name] = row
    record = {"command": f"python benchmarks/lava_library.py --model {args.model} --n {args.n}",
              "date": datetime.date.today().isoformat(), "images": args.n, "T": model.config.T,
              "compared": "run_lava(art, x, fixed_point=True, library=True) vs library=False, default arguments "
                          "(the default plan, 'library'); agreement_with_torch_per_channel_plan: plan='per_channel'",
              "library_run_seconds": round(t_lib, 1),
              "library_layers": sum(r["on_lava_library"] for r in layers.values()), "neuron_layers": len(layers),
              "all_library_layers_equal": all(r["library_equals_custom_run"] for r in layers.values()),
              "off_library": sa.export.loihi_report(art, profile="loihi2").off_library, "layers": layers}
    out = Path(args.out)
    if out.is_file():   # keep the earlier records (another plan or model): previous_runs, newest first
        old = json.loads(out.read_text())
        if "model" in old and old["command"].split("--model ")[1].split()[0] == args.model:
            record = {"command": record["command"], "model": old["model"], **record}   # how that model was trained
        record["previous_runs"] = [{k: v for k, v in old.items() if k != "previous_runs"}, *old.get("previous_runs", [])]
    out.write_text(json.dumps(record, indent=1))
    print(json.dumps({k: v for k, v in record.items() if k not in ("layers", "off_library", "previous_runs")}, indent=1))
    for name, r in layers.items():
        print(f"{name:28s} {'lava' if r['on_lava_library'] else 'custom':6s} equal={r['library_equals_custom_run']} "
              f"torch agreement default plan {r['agreement_with_torch_default_plan']:.4f} "
              f"per_channel {r['agreement_with_torch_per_channel_plan']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
