"""The one training loop every example uses: read ``train`` top to bottom.

Single process, or DistributedDataParallel under ``torchrun`` (gloo on CPU, NCCL on GPU); AdamW with
a warm-up + cosine schedule; optional AMP; gradient clipping; metrics as JSON lines; atomic
checkpoints that hold everything a bit-identical resume needs (model, optimizer, scheduler, grad
scaler, every RNG, step and data position). Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from spikeattn.neuron.base import reset
from spikeattn.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from spikeattn.train.container import load_state_checked
from spikeattn.train.config import RESUMABLE_CHANGES, TrainConfig
from spikeattn.train.distributed import DistContext, all_reduce_sum, broadcast_flag, setup_distributed
from spikeattn.train.interrupt import Interrupted, StopRequest
from spikeattn.train.metrics import MetricsLog, plot_curves, write_json
from spikeattn.train.schedule import make_scheduler

__all__ = ["train", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "ckpt.pt"
Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _default_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def train(model: nn.Module, train_set: Dataset, config: TrainConfig, eval_set: Dataset | None = None,
          forward: Forward | None = None, loss_fn: Callable | None = None,
          augment: Callable[[torch.Tensor], torch.Tensor] | None = None, stop: StopRequest | None = None) -> dict:
    """Train ``model`` on ``train_set`` (items ``(x, y)``) and return the run summary.

    Args:
        model: any module; spiking state is cleared with ``spikeattn.reset`` before every forward.
        train_set, eval_set: map-style datasets of ``(input, target)`` pairs.
        config: a ``TrainConfig``; files go to ``config.out_dir``.
        forward: ``forward(model, x) -> logits``, e.g. to encode images into ``[T, B, ...]`` first;
            default ``model(x)``.
        loss_fn: ``loss_fn(logits, y) -> scalar``; default cross-entropy (accuracy is logged when
            logits are ``[B, classes]`` and targets are class indices).
        augment: ``augment(x) -> x`` on every training batch (on the device; never on eval batches),
            e.g. ``spikeattn.data.RandomShiftFlip``. It must draw from the global torch RNG (saved in
            every checkpoint) so that resuming stays exact; under torchrun each process draws its own.

    Returns:
        The summary dict (also written to ``out_dir/summary.json``).
    """
    ctx = setup_distributed(config.device)
    try:
        return _train(model, train_set, config, eval_set, forward or _default_forward,
                      loss_fn or F.cross_entropy, augment, stop, ctx)
    finally:
        ctx.close()


def _train(model, train_set, config, eval_set, forward, loss_fn, augment, stop, ctx: DistContext) -> dict:
    out = Path(config.out_dir)
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size ({config.batch_size}) must be divisible by the number of processes ({ctx.world_size})")
    per_rank = config.batch_size // ctx.world_size
    batches_per_epoch = _sampler_length(train_set, ctx) // per_rank
    if batches_per_epoch == 0:
        raise ValueError(f"train_set has {len(train_set)} items, fewer than one batch of {config.batch_size}")
    total_steps = config.steps or config.epochs * batches_per_epoch
    _seed_everything(config.seed + ctx.rank)

    model.to(ctx.device)
    raw_model = model
    if ctx.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    optimizer = _make_optimizer(raw_model, config, ctx.device)
    scheduler = make_scheduler(optimizer, total_steps, config.warmup_steps, config.min_lr_ratio)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=config.amp == "fp16")
    autocast = _autocast(config.amp, ctx.device)

    # position: `step` optimizer steps done; the next batch is number `batch_in_epoch` of epoch `epoch`
    pos = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "elapsed": 0.0}
    history: list[dict] = []
    window = _Window(ctx.device)
    if config.resume:
        history = _resume(out / CHECKPOINT_NAME, config, ctx, batches_per_epoch, raw_model, optimizer, scheduler,
                          scaler, pos, window)
    log = MetricsLog(out / "metrics.jsonl", enabled=ctx.is_main, history=history)
    start, last_eval, stopped_early, interrupted = time.perf_counter(), -1, False, False

    def checkpoint():
        elapsed = pos["elapsed"] + time.perf_counter() - start  # wall time over all resumed segments
        _save(out / CHECKPOINT_NAME, config, ctx, batches_per_epoch, raw_model, optimizer, scheduler, scaler,
              {**pos, "elapsed": elapsed}, log, window)

    def evaluate():
        if eval_set is not None:
            log.log({"kind": "eval", "step": pos["step"], **_evaluate(raw_model, eval_set, config, ctx, forward, loss_fn, autocast)})

    bar = tqdm(total=total_steps, initial=pos["step"], disable=not (ctx.is_main and config.progress), dynamic_ncols=True)
    model.train()
    while pos["step"] < total_steps and not (stopped_early or interrupted):
        for x, y in _epoch_batches(train_set, ctx, config, per_rank, pos["epoch"], pos["batch_in_epoch"]):
            lr = optimizer.param_groups[0]["lr"]  # the lr this step uses (the scheduler moves it after)
            x = x.to(ctx.device)
            if augment is not None:
                x = augment(x)
            _train_step(model, x, y.to(ctx.device), forward, loss_fn, optimizer,
                        scheduler, scaler, autocast, config.grad_clip, window)
            pos["step"] += 1
            pos["batch_in_epoch"] += 1
            bar.update(1)
            if pos["step"] % config.log_every == 0 or pos["step"] == total_steps:
                record = window.flush(ctx)
                log.log({"kind": "train", "step": pos["step"], "epoch": pos["epoch"], "lr": lr, **record})
                bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2e}")
            if config.eval_every and pos["step"] % config.eval_every == 0:
                evaluate()
                last_eval = pos["step"]
            if config.checkpoint_every and pos["step"] % config.checkpoint_every == 0 and pos["step"] < total_steps:
                checkpoint()
            if config.max_minutes is not None:
                stopped_early = broadcast_flag(ctx, time.perf_counter() - start > 60 * config.max_minutes)
            if stop is not None and pos["step"] < total_steps:
                interrupted = broadcast_flag(ctx, stop.is_set())
            if pos["step"] >= total_steps or stopped_early or interrupted:
                break
        else:  # the epoch ran out: the next batch is the first of the next epoch
            pos["epoch"] += 1
            pos["batch_in_epoch"] = 0
    bar.close()
    if interrupted:  # no evaluation: save the state and leave as soon as possible
        checkpoint()
        raise Interrupted(pos["step"], out / CHECKPOINT_NAME, stop.signum)
    if last_eval != pos["step"]:
        evaluate()
    checkpoint()
    pos["elapsed"] += time.perf_counter() - start
    return _finish(out, log, config, ctx, raw_model, pos, total_steps, batches_per_epoch, stopped_early)


class _Window:
    """Running sums of the train loss/accuracy between two log lines, kept on the device (no sync per step)."""

    def __init__(self, device):
        self.device = device
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, correct, n

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        correct = (logits.argmax(-1) == y).sum() if logits.dim() == 2 and not y.is_floating_point() else torch.tensor(-1)
        self.sums += torch.stack([loss.detach().double() * n, correct.double().to(self.device), torch.tensor(float(n), device=self.device)])

    def flush(self, ctx: DistContext) -> dict:
        loss_n, correct, n = all_reduce_sum(ctx, self.sums.tolist())
        self.sums.zero_()
        record = {"loss": loss_n / n}
        if correct >= 0:
            record["acc"] = correct / n
        return record


def _train_step(model, x, y, forward, loss_fn, optimizer, scheduler, scaler, autocast, grad_clip, window) -> None:
    reset(model)  # the library's models keep no state, but a user's stateful neurons would: start from rest
    with autocast:
        logits = forward(model, x)
        loss = loss_fn(logits, y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    window.add(loss, logits.detach().float(), y)


@torch.no_grad()
def _evaluate(model, eval_set, config, ctx, forward, loss_fn, autocast) -> dict:
    """Loss and accuracy over the whole eval set; each process takes every world_size-th item."""
    was_training = model.training
    model.eval()
    shard = torch.utils.data.Subset(eval_set, range(ctx.rank, len(eval_set), ctx.world_size))
    sums = [0.0, 0.0, 0.0]  # loss * n, correct, n
    for x, y in DataLoader(shard, batch_size=config.eval_batch_size, num_workers=config.num_workers):
        x, y = x.to(ctx.device), y.to(ctx.device)
        reset(model)  # a user's stateful neurons (sa.neuron.LIF()) start every batch from rest
        with autocast:
            logits = forward(model, x).float()
            loss = loss_fn(logits, y)
        sums[0] += loss.item() * y.shape[0]
        sums[1] += (logits.argmax(-1) == y).sum().item() if logits.dim() == 2 and not y.is_floating_point() else -math.inf
        sums[2] += y.shape[0]
    model.train(was_training)
    loss_n, correct, n = all_reduce_sum(ctx, sums)
    return {"loss": loss_n / n, **({"acc": correct / n} if correct >= 0 else {})}


def _sampler_length(dataset, ctx) -> int:
    return len(DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False))


def _epoch_batches(dataset, ctx, config, per_rank: int, epoch: int, start_batch: int) -> DataLoader:
    """Batches of one epoch from batch ``start_batch`` on: a reshuffle seeded by (seed, epoch).

    The order depends only on (seed, epoch, world size), never on the global RNG, so a resumed run
    sees the same batches as an uninterrupted one. With W processes and global batch W*b, process r
    takes perm[r::W] (DistributedSampler); batch k over all processes is the same set of items as
    batch k of a single process with batch W*b.
    """
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed)
    sampler.set_epoch(epoch)
    indices = list(sampler)[start_batch * per_rank:]
    # A private generator: DataLoader draws a base seed for its workers, which must not consume the global RNG.
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    return DataLoader(dataset, batch_size=per_rank, sampler=indices, drop_last=True,
                      num_workers=config.num_workers, generator=gen)


def _make_optimizer(model: nn.Module, config: TrainConfig, device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, foreach=device.type == "cuda")


def _autocast(amp: str | None, device: torch.device):
    if amp is None:
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"amp='fp16' needs a CUDA device, got {device}; use amp='bf16' or None")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _gather_local(ctx, window) -> list[dict]:
    """Per-process state: RNGs and the partial metric sums since the last log line."""
    local = {**rng_state(), "window": window.sums.cpu()}
    if not ctx.distributed:
        return [local]
    states = [None] * ctx.world_size
    dist.all_gather_object(states, local)
    return states


def _save(path, config, ctx, batches_per_epoch, model, optimizer, scheduler, scaler, pos, log, window) -> None:
    rng = _gather_local(ctx, window)  # every process takes part; only rank 0 writes
    if not ctx.is_main:
        return
    save_checkpoint({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(), "rng": rng, "step": pos["step"], "epoch": pos["epoch"],
        "batch_in_epoch": pos["batch_in_epoch"], "elapsed": pos["elapsed"],
        "world_size": ctx.world_size, "batches_per_epoch": batches_per_epoch,
        "config": config.to_dict(), "history": log.history,
    }, path)


def _resume(path, config, ctx, batches_per_epoch, model, optimizer, scheduler, scaler, pos, window) -> list[dict]:
    ckpt = load_checkpoint(path, map_location=ctx.device)
    changed = {k: (v, getattr(config, k)) for k, v in ckpt["config"].items()
               if k not in RESUMABLE_CHANGES and v != getattr(config, k, None)}
    if changed:
        raise ValueError(f"{path}: cannot resume with a different config; changed (checkpoint, now): {changed}")
    if ckpt["world_size"] != ctx.world_size or ckpt["batches_per_epoch"] != batches_per_epoch:
        raise ValueError(f"{path}: saved with {ckpt['world_size']} processes and {ckpt['batches_per_epoch']} batches "
                         f"per epoch, now {ctx.world_size} and {batches_per_epoch}: the data order would differ")
    load_state_checked(model, ckpt["model"], path)  # another preset: one line naming the file, not a page
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    local = ckpt["rng"][ctx.rank]
    local["torch"] = local["torch"].cpu()
    set_rng_state(local)
    window.sums.copy_(local["window"])
    pos.update(step=ckpt["step"], epoch=ckpt["epoch"], batch_in_epoch=ckpt["batch_in_epoch"], elapsed=ckpt["elapsed"])
    return ckpt["history"]


def _finish(out, log, config, ctx, model, pos, total_steps, batches_per_epoch, stopped_early) -> dict:
    evals = [r for r in log.history if r["kind"] == "eval"]
    trains = [r for r in log.history if r["kind"] == "train"]
    summary = {
        "steps": pos["step"], "total_steps": total_steps, "stopped_early": stopped_early,
        "epochs": pos["step"] / batches_per_epoch, "wall_time_s": pos["elapsed"],
        "world_size": ctx.world_size, "rank": ctx.rank, "device": str(ctx.device),
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_train_loss": trains[-1]["loss"] if trains else None,
        "final_eval_loss": evals[-1]["loss"] if evals else None,
        "final_eval_acc": evals[-1].get("acc") if evals else None,
        "best_eval_acc": max((r.get("acc", -1) for r in evals), default=None),
        "checkpoint": str(out / CHECKPOINT_NAME), "config": config.to_dict(),
    }
    if ctx.is_main:
        write_json(out / "summary.json", summary)
        plot_curves(log.history, out / "curves.png")
    return summary
