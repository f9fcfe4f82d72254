"""The main demo: train a small Spikformer on Fashion-MNIST, count its operations, (export it to Lava).

    python examples/demo.py             # under 10 minutes on 2 CPU cores (make demo)
    python examples/demo.py --quick     # a few hundred images, under a minute: the CI smoke test

1. trains spikformer-mini-fmnist with its recipe (spikeattn.recipes.fit_spikformer, as examples/train_spikformer.py
   and `spikeattn train spikformer` do) and prints the test accuracy;
2. counts its synaptic operations and MACs on a batch of test images (spikeattn.opcount): the table,
   the energy on the '45nm' and 'loihi' profiles, and the same network as an ANN;
3. exports it to Lava and runs a few test images there (when .venv-lava exists): prediction agreement
   with torch, max logit difference, accuracy.

Results go to runs/demo/ (runs/demo-2/, ... when it holds an earlier run): model.pt, metrics.jsonl,
summary.json, curves.png, result.json, opcount.json and opcount.png.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import spikeattn as sa
from spikeattn.recipes import SpikformerRecipe, fit_spikformer, next_free_dir
from spikeattn.recipes.spikformer import QUICK
from spikeattn.train.metrics import write_json

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few hundred images and a few dozen steps (CI)")
    p.add_argument("--budget-minutes", type=float, default=7.5,
                   help="training time: the step count (500..6000 of batch 64) is sized to it on this machine; "
                        "the demo adds ~1 min (testing, counting, Lava)")
    p.add_argument("--steps", type=int, default=None, help="a fixed step count instead of --budget-minutes")
    p.add_argument("--max-minutes", type=float, default=9.0, help="hard stop of training (eval + checkpoint)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (the recorded run used 1)")
    p.add_argument("--count-images", type=int, default=64, help="test images the operation count runs on")
    p.add_argument("--lava-images", type=int, default=64, help="test images run in Lava (0 with --quick)")
    args = p.parse_args(argv)
    if args.quick:  # CI: no Lava run unless asked for; the training's --quick is the recipe's QUICK
        p.set_defaults(lava_images=0)
        args = p.parse_args(argv)
    return args


def count_operations(model, images: torch.Tensor, out: Path) -> dict:
    """Operation and energy report of one forward over ``images`` [B, 1, 28, 28]; prints it, saves JSON + plot."""
    report = sa.opcount.count(model, images)
    print(report.table())
    energy = {p: report.energy(p)["total"]["total_j"] for p in ("45nm", "loihi")}
    per_image = {p: j / len(images) for p, j in energy.items()}
    print("energy per image: " + ", ".join(f"{p} {j * 1e6:.2f} uJ" for p, j in per_image.items()))
    print(sa.opcount.compare_ann(model, images).table())
    report.to_json(out / "opcount.json")
    report.plot(out / "opcount.png")
    return {"energy_per_image_j": per_image, "sop": report.total("sop"), "mac": report.total("mac")}


def export_and_run_lava(model, n_images: int) -> dict | None:
    """Export ``model`` to Lava, run ``n_images`` test images there and print how its predictions and logits
    agree with torch, and both accuracies.

    Prints ``Lava: skipped: <reason>`` and returns None when there are no images to run, no Lava
    environment (.venv-lava, `make lava-env`), or the exporter refuses the model.
    """
    if n_images <= 0:
        return _skip("--lava-images 0")
    if not (REPO / ".venv-lava").is_dir():
        return _skip(f"no Lava environment at {REPO / '.venv-lava'} (make lava-env)")
    test = sa.data.fashion_mnist("test", limit=n_images)
    model.eval()  # BatchNorm folds into the weights only with its running statistics
    x = test.images.unsqueeze(0).repeat(model.config.T, 1, 1, 1, 1)      # [T, N, 1, 28, 28], direct encoding
    try:
        with tempfile.TemporaryDirectory() as tmp:
            artifact = sa.export.to_lava(model, Path(tmp) / "spikformer.lava", x[:, :1])
            start = time.perf_counter()
            out = sa.export.run_lava(artifact, x.numpy(), timeout=600)           # [T, N, classes]
            lava_s = time.perf_counter() - start
    except sa.export.NotExportable as e:
        return _skip(f"the model is not exportable ({e})")
    with torch.no_grad():
        ref = model(test.images)                                             # [N, classes]
    lava_logits = torch.as_tensor(out).reshape(model.config.T, n_images, -1).mean(0)
    pred_lava, pred_torch = lava_logits.argmax(-1), ref.argmax(-1)
    res = {"model": "spikformer", "images": n_images, "lava_s": lava_s,
           "prediction_agreement": (pred_lava == pred_torch).float().mean().item(),
           "max_abs_logit_diff": (lava_logits - ref).abs().max().item(),
           "torch_acc": (pred_torch == test.labels).float().mean().item(),
           "lava_acc": (pred_lava == test.labels).float().mean().item()}
    print(f"Lava (Loihi2SimCfg, float): {n_images} test images in {lava_s:.1f} s; predictions agree with "
          f"torch on {100 * res['prediction_agreement']:.1f}% (max |logit diff| {res['max_abs_logit_diff']:.2g}); "
          f"accuracy torch {100 * res['torch_acc']:.1f}%, Lava {100 * res['lava_acc']:.1f}%")
    return res


def _skip(reason: str) -> None:
    print(f"Lava: skipped: {reason}")
    return None


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start, cpu_start = time.perf_counter(), time.process_time()

    # 1. the recorded recipe; its length sized to --budget-minutes here (or --steps), or QUICK's for CI
    length = {"steps": args.steps} if args.steps else {"budget_minutes": args.budget_minutes}
    config = SpikformerRecipe(out=str(next_free_dir(args.out)), data=args.data, max_minutes=args.max_minutes,
                              progress=False, **{**length, **(QUICK if args.quick else {})})
    model, result = fit_spikformer(config)
    out = Path(config.out)
    print(f"test accuracy {result['test_acc']:.4f} on {result['test_images']} images after {result['steps']} steps "
          f"({result['epochs']:.2f} epochs) in {result['wall_s']:.0f} s; results in {out}/")

    # 2. operations and energy, 3. Lava
    test_set = sa.data.fashion_mnist("test", root=args.data, limit=args.count_images)
    images = torch.stack([test_set[i][0] for i in range(len(test_set))])
    result["opcount"] = count_operations(model, images, out)
    result["lava"] = export_and_run_lava(model, args.lava_images)

    result["demo_wall_s"] = time.perf_counter() - start
    result["demo_cpu_s"] = time.process_time() - cpu_start
    write_json(out / "result.json", result)
    print(f"demo done: test accuracy {result['test_acc']:.4f}; {result['demo_wall_s']:.0f} s wall, "
          f"{result['demo_cpu_s']:.0f} s CPU; results in {out}/")
    return result


if __name__ == "__main__":
    main()
