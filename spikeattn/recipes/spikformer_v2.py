"""Spikformer V2: masked-image pretraining without labels, then fine-tuning (the measured pair).

    mae, info = pretrain_spikformer_v2(V2PretrainRecipe())                       # 4800 steps, mask 0.4
    model, result = fit_spikformer(v2_finetune_recipe(init_from=info["file"]), labelled, test_set)

Pretraining writes ``out/pretrained.pt`` (a ``save_model`` file: the encoder, its head untrained;
its ``pretrain`` entry records mask, steps and image count). Fine-tuning is ``fit_spikformer`` with
the recipe ``v2_finetune_recipe`` returns (300 steps at lr 2e-3: the budget both arms of the recorded
comparison got, spikformer_v2_pretrain_cpu.json).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from spikeattn.data import fashion_mnist
from spikeattn.models import SpikformerMAE, spikformer
from spikeattn.recipes.out_dir import check_out_dir
from spikeattn.recipes.spikformer import SpikformerRecipe, warmup
from spikeattn.train import TrainConfig, pretrain
from spikeattn.train.interrupt import StopRequest
from spikeattn.train.pretrain import MASK_RATIO

__all__ = ["V2PretrainRecipe", "pretrain_spikformer_v2", "v2_finetune_recipe", "V2_PRESET"]

V2_PRESET = "spikformer-v2-mini-fmnist"


@dataclass
class V2PretrainRecipe:
    preset: str = V2_PRESET            # an SCS stem: its masking survives the convolutions
    data: str | None = None            # Fashion-MNIST folder; labels are dropped
    train_limit: int | None = None
    mask_ratio: float = MASK_RATIO     # 0.4: chosen on held-out images (see spikeattn/train/pretrain.py)
    norm_pix: bool = False             # MAE's per-patch normalised target: hurts on Fashion-MNIST
    decoder_dim: int = 64
    decoder_depth: int = 1
    steps: int = 4800
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 240            # at most a fifth of the run
    grad_clip: float = 1.0
    out: str = "runs/spikformer_v2/pretrain"
    seed: int = 0
    resume: bool = False
    checkpoint_every: int = 0
    log_every: int = 100
    max_minutes: float | None = None
    progress: bool = True

    def __post_init__(self):
        self.betas = tuple(self.betas)


def pretrain_spikformer_v2(config: V2PretrainRecipe, images: Dataset | None = None,
                           stop: StopRequest | None = None) -> tuple[SpikformerMAE, dict]:
    """Masked-image pretraining of a fresh encoder on ``images`` (default: Fashion-MNIST's training set).

    Returns the trained MAE (for reconstructions) and ``info``: steps, final loss, wall time, the
    pretrained file and the recipe.
    """
    out = check_out_dir(config.out, config.resume)
    if images is None:
        images = fashion_mnist("train", root=config.data, limit=config.train_limit)
    torch.manual_seed(config.seed)
    encoder = spikformer(config.preset)
    if encoder.config.stem != "scs":
        raise ValueError(f"pretraining needs a Spikformer V2 (SCS stem: its masking survives the convolutions); "
                         f"{config.preset} has stem={encoder.config.stem!r}: use {V2_PRESET}")
    train_config = TrainConfig(
        steps=config.steps, batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay,
        betas=config.betas, warmup_steps=warmup(config.warmup_steps, config.steps), grad_clip=config.grad_clip, log_every=config.log_every,
        checkpoint_every=config.checkpoint_every, out_dir=str(out), seed=config.seed, resume=config.resume,
        max_minutes=config.max_minutes, progress=config.progress)
    start = time.perf_counter()
    mae, summary = pretrain(encoder, images, train_config, mask_ratio=config.mask_ratio, norm_pix=config.norm_pix,
                            decoder_dim=config.decoder_dim, decoder_depth=config.decoder_depth, stop=stop)
    info = {"steps": summary["steps"], "batch_size": config.batch_size, "lr": config.lr,
            "final_loss": summary["final_train_loss"], "wall_s": time.perf_counter() - start,
            "file": summary["pretrained"], "mask_ratio": config.mask_ratio, "norm_pix": config.norm_pix,
            "decoder": {"dim": config.decoder_dim, "depth": config.decoder_depth},
            "recipe": dataclasses.asdict(config)}
    return mae, info


def v2_finetune_recipe(**changes) -> SpikformerRecipe:
    """The fine-tuning (and from-scratch) recipe of the recorded V2 comparison, with ``changes``
    (``init_from=`` the pretrained file; none: the same budget from scratch)."""
    base = dict(preset=V2_PRESET, steps=300, batch_size=64, lr=2e-3, weight_decay=0.05, warmup_steps=30,
                grad_clip=1.0, recalibrate_batches=4, recalibrate_batch_size=250, checkpoint_every=0, log_every=50,
                out="runs/spikformer_v2/finetune")
    return SpikformerRecipe(**{**base, **changes})
