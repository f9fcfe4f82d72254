"""Loihi resource report of the Spikformer presets on both profiles -> benchmarks/results/loihi_report.json.

Cores, chips and the binding limit per layer depend on the shapes only; the energy and latency
estimates count the spikes of an untrained (randomly initialised, seed 0) model on one random image.
Weights take the report's default synapses per connection (that of run_lava's default fixed-point
plan); an earlier record's totals move to ``previous_runs``.

    .venv/bin/python benchmarks/loihi_report.py
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

import spikeattn as sa

PRESETS = ("spikformer-mini-fmnist", "spikformer-4-384", "spikformer-8-768")
OUT = Path(__file__).resolve().parent / "results" / "loihi_report.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    record = {"command": "python benchmarks/loihi_report.py", "date": datetime.date.today().isoformat(),
              "weights": "untrained presets, torch.manual_seed(0); input: one torch.rand image (seed 0)",
              "weight_synapses": None, "reports": {}}
    for name in PRESETS:
        torch.manual_seed(0)
        model = sa.models.spikformer(name).eval()
        c = model.config
        x = torch.rand((1, c.in_channels, c.img_size, c.img_size), generator=torch.Generator().manual_seed(0))
        for profile in ("loihi1", "loihi2"):
            rep = sa.export.loihi_report(model, x, profile=profile)
            d = rep.as_dict()
            record["weight_synapses"] = rep.weight_synapses   # loihi_report's default
            d.pop("sources")
            binding = {}
            for layer in rep.layers:
                binding[layer["binding"]] = binding.get(layer["binding"], 0) + layer["cores"]
            d["cores_by_binding"] = binding
            d["largest_layers"] = sorted(((l["name"], l["cores"], l["binding"]) for l in rep.layers),
                                         key=lambda r: -r[1])[:3]
            record["reports"][f"{name}/{profile}"] = d
            print(f"{name:24s} {profile}: {rep.total_cores} cores, {rep.chips} chips, fits {rep.fits}, "
                  f"binding {binding}, energy {rep.estimate['energy_j'] * 1e3:.3g} mJ")
    out = Path(args.out)
    if out.is_file():   # the earlier record's totals (e.g. another synapse count), newest first
        old = json.loads(out.read_text())
        summary = {k: old[k] for k in ("command", "date", "weight_synapses") if k in old}
        summary["totals"] = {key: {k: r[k] for k in ("total_cores", "chips", "cores_by_binding")}
                             for key, r in old["reports"].items()}
        record["previous_runs"] = [summary, *old.get("previous_runs", [])]
    out.write_text(json.dumps(record, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
