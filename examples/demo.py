"""The main demo: train a small Spikformer on Fashion-MNIST, count its operations, (export it to Lava).

    python examples/demo.py             # ~10 minutes on 2 CPU cores (make demo)
    python examples/demo.py --quick     # a few hundred images, under a minute: the CI smoke test

1. trains spikformer-mini-fmnist (examples/train_spikformer.py's recipe) and prints the test accuracy;
2. counts its synaptic operations and MACs on a batch of test images (spikeattn.opcount): the table,
   the energy on the '45nm' and 'loihi' profiles, and the same network as an ANN;
3. exports it to Lava and runs a few test images there, when spikeattn.export and .venv-lava exist.

Results go to runs/demo/: model.pt, metrics.jsonl, summary.json, curves.png, result.json,
opcount.json and opcount.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

import spikeattn as sa

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))  # the training recipe lives beside this script
import train_spikformer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few hundred images and a few dozen steps (CI)")
    p.add_argument("--max-minutes", type=float, default=8.5,
                   help="training time budget (the whole demo adds ~30 s of testing and counting)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (see train_spikformer.py)")
    p.add_argument("--count-images", type=int, default=64, help="test images the operation count runs on")
    p.add_argument("--lava-images", type=int, default=16, help="test images run in Lava (0: skip)")
    return p.parse_args(argv)


def count_operations(model, images: torch.Tensor, out: Path) -> dict:
    """Operation and energy report of one forward over ``images`` [B, 1, 28, 28]; prints it, saves JSON + plot."""
    report = sa.opcount.count(model, images)
    print(report.table())
    energy = {p: report.energy(p)["total"]["total_j"] for p in ("45nm", "loihi")}
    per_image = {p: j / len(images) for p, j in energy.items()}
    print("energy per image: " + ", ".join(f"{p} {j * 1e6:.2f} uJ" for p, j in per_image.items()))
    print(report.compare_ann().table())
    report.to_json(out / "opcount.json")
    report.plot(out / "opcount.png")
    return {"energy_per_image_j": per_image, "sop": report.total("sop"), "mac": report.total("mac")}


# ------------------------------------------------------------------------------------------------
# LAVA WIRING POINT (issue 7): the one place the demo touches the Lava exporter.
def export_and_run_lava(model, images: torch.Tensor, labels: torch.Tensor, out: Path) -> dict | None:
    """Export ``model`` to Lava, run ``images`` [N, 1, 28, 28] there, print spike agreement and accuracy.

    Prints ``Lava: skipped: <reason>`` and returns None when the exporter, its example
    (examples/export_lava.py), the Lava environment (.venv-lava, `make lava-env`) or support for
    this model is missing.
    """
    repo = EXAMPLES.parent
    if len(images) == 0:
        return _skip("--lava-images 0")
    if importlib.util.find_spec("spikeattn.export") is None:
        return _skip("spikeattn.export is not built yet")
    import spikeattn.export as export

    if not (hasattr(export, "to_lava") and hasattr(export, "run_lava")):
        return _skip("spikeattn.export has no to_lava/run_lava")
    if not (repo / ".venv-lava").is_dir():
        return _skip(f"no Lava environment at {repo / '.venv-lava'} (make lava-env)")
    try:
        example_input = images[:1].unsqueeze(0).expand(model.config.T, -1, -1, -1, -1)
        export.to_lava(model, out / "lava", example_input)
    except export.NotExportable as e:
        kinds = sorted({kind for _, kind, _ in e.problems})
        return _skip(f"{type(model).__name__} is not exportable yet ({len(e.problems)} modules: {', '.join(kinds)})")
    if not (EXAMPLES / "export_lava.py").is_file():
        return _skip("examples/export_lava.py (the export recipe) is not there yet")
    return _skip("the Spikformer export is not wired into the demo yet")


def _skip(reason: str) -> None:
    print(f"Lava: skipped: {reason}")
    return None
# ------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    start, cpu_start = time.perf_counter(), time.process_time()

    train_args = ["--out", str(out), "--max-minutes", str(args.max_minutes), "--threads", str(args.threads),
                  "--no-progress"]
    train_args += ["--quick"] if args.quick else []
    train_args += ["--data", args.data] if args.data else []
    model, result = train_spikformer.run(train_spikformer.parse_args(train_args))

    n = max(args.count_images, args.lava_images)
    test_set = sa.data.fashion_mnist("test", root=args.data, limit=n)
    images = torch.stack([test_set[i][0] for i in range(len(test_set))])
    labels = torch.tensor([int(test_set[i][1]) for i in range(len(test_set))])
    result["opcount"] = count_operations(model.eval(), images[: args.count_images], out)
    result["lava"] = export_and_run_lava(model, images[: args.lava_images], labels[: args.lava_images], out)

    result["demo_wall_s"] = time.perf_counter() - start
    result["demo_cpu_s"] = time.process_time() - cpu_start
    (out / "result.json").write_text(json.dumps(result, indent=2, default=list) + "\n")
    print(f"demo done: test accuracy {result['test_acc']:.4f}; {result['demo_wall_s']:.0f} s wall, "
          f"{result['demo_cpu_s']:.0f} s CPU; results in {out}/")
    return result


if __name__ == "__main__":
    main()
