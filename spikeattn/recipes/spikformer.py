"""Spikformer on Fashion-MNIST: the one recipe behind `spikeattn train spikformer`, examples/train_spikformer.py
and `make demo`.

    model, result = fit_spikformer(SpikformerRecipe())          # the recorded demo run (86.86%, 6000 steps)
    model, result = fit_spikformer(SpikformerRecipe(**QUICK))   # a few hundred images (CI)

Writes ``out/``: model.pt (``load_model``; read by `spikeattn count/export`), result.json, and the
trainer's ckpt.pt, metrics.jsonl, summary.json, curves.png.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from spikeattn.data import RandomShiftFlip, fashion_mnist
from spikeattn.data.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from spikeattn.models import spikformer
from spikeattn.recipes.out_dir import check_out_dir
from spikeattn.train import TrainConfig, accuracy, init_from, train
from spikeattn.train.bn import recalibrate_bn
from spikeattn.train.checkpoint import load_checkpoint
from spikeattn.train.interrupt import StopRequest
from spikeattn.train.loop import CHECKPOINT_NAME
from spikeattn.train.metrics import write_json
from spikeattn.train.model_file import save_model
from spikeattn.train.probe import fit_head

__all__ = ["SpikformerRecipe", "fit_spikformer", "QUICK", "DEFAULT_STEPS", "MODEL_NAME", "steps_for_budget", "warmup"]

MODEL_NAME = "model.pt"
DEFAULT_STEPS = 6000  # what the recorded demo run made (its 7.5-minute budget met the 6000-step cap here)


@dataclass
class SpikformerRecipe:
    # model: a preset (it carries T=1, early pooling and tau=1.2; reasons beside it in models/spikformer.py)
    preset: str = "spikformer-mini-fmnist"
    overrides: dict = field(default_factory=dict)  # SpikformerConfig fields, e.g. {"T": 2, "dim": 128}
    init_from: str | None = None       # copy a pretrained encoder's stem and blocks in (pretrained.pt)
    head_init: str = "random"          # "probe": fit the head to the initial features first (LP-FT)
    # data: Fashion-MNIST (default folder /usr/share/datasets/fashion-mnist), the first N images if limited
    data: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    augment: bool = False              # random shifts (up to 2 px) and left-right flips of training images
    # length: `steps`, or as many as fit `budget_minutes` on this machine, or `epochs`; none: DEFAULT_STEPS
    steps: int | None = None           # optimizer steps (no length given at all: DEFAULT_STEPS = 6000)
    budget_minutes: float | None = None  # as many steps as fit this long here (timed first; 500..6000)
    epochs: int | None = None          # passes over the training images
    # AdamW with linear warm-up (at most a fifth of the run) and cosine decay to 0
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    # BN running statistics re-estimated with the final weights (they trail the weights at this lr)
    recalibrate_batches: int = 40
    recalibrate_batch_size: int = 256
    # the run
    out: str = "runs/spikformer"
    seed: int = 0                      # model init and data order
    resume: bool = False               # continue from out/ckpt.pt
    checkpoint_every: int = 300        # steps (0: only at the end)
    log_every: int = 50
    max_minutes: float | None = None   # training stops (eval + checkpoint) after this long
    progress: bool = True

    def __post_init__(self):
        lengths = [name for name in ("steps", "budget_minutes", "epochs") if getattr(self, name) is not None]
        if len(lengths) > 1:
            raise ValueError(f"give one of steps, budget_minutes, epochs; got {lengths}")
        if self.head_init not in ("random", "probe"):
            raise ValueError(f"head_init must be 'random' or 'probe', got {self.head_init!r}")
        self.overrides = dict(self.overrides)


# `--quick` (CI): a few hundred images and a few dozen steps.
QUICK = dict(train_limit=640, test_limit=500, steps=60, budget_minutes=None, epochs=None, batch_size=32,
             warmup_steps=5, log_every=10, checkpoint_every=0, recalibrate_batches=5)


def fit_spikformer(config: SpikformerRecipe, train_set: Dataset | None = None, test_set: Dataset | None = None,
                   stop: StopRequest | None = None) -> tuple[nn.Module, dict]:
    """Train, recalibrate BN, test and save one Spikformer; returns the model (eval mode) and the result.

    ``train_set``/``test_set`` replace Fashion-MNIST (e.g. a labelled subset and held-out images);
    ``stop`` ends the run with a checkpoint (``spikeattn.train.Interrupted``).
    """
    out = check_out_dir(config.out, config.resume)
    if train_set is None:
        train_set = fashion_mnist("train", root=config.data, limit=config.train_limit)
    if test_set is None:
        test_set = fashion_mnist("test", root=config.data, limit=config.test_limit)
    torch.manual_seed(config.seed)
    model = spikformer(config.preset, **config.overrides)
    channels, size = train_set[0][0].shape[:2]
    if (model.config.in_channels, model.config.img_size) != (channels, size):
        raise ValueError(f"{config.preset} takes {model.config.in_channels}x{model.config.img_size}x{model.config.img_size} "
                         f"images, the data has {channels}x{size}x{size}: use a 28x28 grey preset "
                         "(spikformer-mini-fmnist) or the overrides img_size=28 in_channels=1")
    if config.init_from:
        init_from(model, config.init_from)
    if config.head_init == "probe":
        fit_head(model, train_set)
    steps = _steps(config, model, train_set)
    train_config = TrainConfig(
        steps=steps, epochs=config.epochs or 1, batch_size=config.batch_size, lr=config.lr,
        weight_decay=config.weight_decay, warmup_steps=warmup(config.warmup_steps, steps), grad_clip=config.grad_clip,
        log_every=config.log_every, checkpoint_every=config.checkpoint_every, out_dir=str(out), seed=config.seed,
        resume=config.resume, max_minutes=config.max_minutes, progress=config.progress)
    # shifted-in pixels are background: 0 before normalisation
    augment = RandomShiftFlip(pad=2, flip=True, fill=-FASHION_MNIST_MEAN / FASHION_MNIST_STD) if config.augment else None

    start, cpu_start = time.perf_counter(), time.process_time()
    summary = train(model, train_set, train_config, eval_set=test_set, augment=augment, stop=stop)
    train_s = time.perf_counter() - start
    recalibrate_bn(model, train_set, batches=config.recalibrate_batches, batch_size=config.recalibrate_batch_size)
    acc = accuracy(model, test_set)
    result = {"preset": config.preset, "overrides": config.overrides, "test_acc": acc,
              "test_acc_before_bn_recalibration": summary["final_eval_acc"], "test_images": len(test_set),
              "steps": summary["steps"], "epochs": summary["epochs"], "stopped_early": summary["stopped_early"],
              "final_train_loss": summary["final_train_loss"], "train_wall_s": train_s, "wall_s": time.perf_counter() - start,
              "cpu_s": time.process_time() - cpu_start, "threads": torch.get_num_threads(),
              "budget_minutes": config.budget_minutes, "augment": repr(augment) if augment else None,
              "recipe": dataclasses.asdict(config)}
    # preset + overrides rebuild it by name; the full model_config (inside) rebuilds it exactly
    if summary["rank"] == 0:  # under torchrun every process gets here: one writes
        save_model(model, out / MODEL_NAME, preset=config.preset, overrides=config.overrides, test_acc=acc,
                   recipe=dataclasses.asdict(config))
        write_json(out / "result.json", result)
    return model.eval(), result


def warmup(warmup_steps: int, steps: int | None) -> int:
    """At most a fifth of the run, so that a short run keeps a cosine phase (epochs: as given). The demo's
    budget gives 500..6000 steps: always its full 100 warm-up steps, as when its result was recorded."""
    return warmup_steps if steps is None else min(warmup_steps, steps // 5)


def _steps(config: SpikformerRecipe, model: nn.Module, train_set: Dataset) -> int | None:
    """The run's optimizer steps (None: ``epochs`` decides)."""
    if config.epochs is not None:
        return None
    if config.budget_minutes is None:
        return config.steps or DEFAULT_STEPS
    if config.resume:  # the schedule the run started with, not a new timing
        return load_checkpoint(Path(config.out) / CHECKPOINT_NAME)["config"]["steps"]
    steps, per_step = steps_for_budget(model, train_set, config.batch_size, config.budget_minutes)
    print(f"{config.budget_minutes:g} min budget: {steps} steps of ~{per_step * 1e3:.0f} ms")
    return steps


def steps_for_budget(model: nn.Module, train_set: Dataset, batch_size: int, minutes: float,
                     bounds: tuple[int, int] = (500, 6000)) -> tuple[int, float]:
    """(optimizer steps that fit ``minutes`` of training here, measured seconds per step).

    Times a few AdamW steps of a copy of ``model`` on one real batch (the first ones are warm-up),
    so the run's own model, optimizer and RNG are untouched. 10% is kept back for data loading,
    logging and checkpoints. A fixed step count would overrun on a slower machine and waste a faster one.
    """
    probe = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-4)
    x = torch.stack([train_set[i][0] for i in range(batch_size)])
    y = torch.as_tensor([int(train_set[i][1]) for i in range(batch_size)])
    rng = torch.get_rng_state()
    seconds = []
    for _ in range(8):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(probe(x), y).backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    torch.set_rng_state(rng)
    per_step = statistics.median(seconds[3:])
    return int(min(max(0.9 * 60 * minutes / per_step, bounds[0]), bounds[1])), per_step
