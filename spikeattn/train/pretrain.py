"""Masked-image pretraining of a Spikformer V2 encoder, and loading it for fine-tuning.

    mae, summary = pretrain(spikformer("spikformer-v2-mini-fmnist"), images, TrainConfig(...))
    model = init_from(spikformer("spikformer-v2-mini-fmnist"), "runs/pretrain/pretrained.pt")

``pretrain`` runs the shared trainer (``spikeattn.train.train``) with a forward that draws a fresh
random mask per batch and returns the reconstruction loss itself (a 0-dim tensor; the trainer
logs it and reports no accuracy). ``init_from`` copies the stem and blocks into a classifier.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from spikeattn.models.spikformer import Spikformer
from spikeattn.models.spikformer_mae import SpikformerMAE, patchify
from spikeattn.train.container import CheckpointError, read_file
from spikeattn.train.config import TrainConfig
from spikeattn.train.interrupt import StopRequest
from spikeattn.train.loop import train
from spikeattn.train.model_file import save_model

__all__ = ["random_keep_mask", "masked_mse", "mae_loss", "WithoutLabels", "pretrain", "init_from",
           "ENCODER_PREFIXES", "PRETRAINED_NAME"]

ENCODER_PREFIXES = ("embed.", "blocks.")   # what pretraining trains and fine-tuning inherits (not the head)
PRETRAINED_NAME = "pretrained.pt"
# MAE's 75% is for 196 ImageNet patches; on a 7x7 grid less masking transfers better. Chosen on
# held-out training images (examples/pretrain_spikformer_v2.py --holdout 10000, 5 label draws, gain in
# points): 0.9: -0.64, 0.75: +2.06, 0.5: +3.97, 0.4: +4.87, 0.3: +4.77 (spikformer_v2_pretrain_cpu.json).
# norm_pix (MAE's per-patch normalised target) is off: Fashion-MNIST's 4x4 patches are mostly flat
# background, whose normalised pixels are amplified noise (-0.83 points with it, +2.04 without).
MASK_RATIO = 0.4


def random_keep_mask(batch: int, num_tokens: int, mask_ratio: float = MASK_RATIO, generator: torch.Generator | None = None,
                     device=None) -> torch.Tensor:
    """``[B, N]`` bool, True = visible: ``round(N (1 - mask_ratio))`` (at least 1) random tokens per row."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}")
    n_keep = max(1, round(num_tokens * (1.0 - mask_ratio)))
    noise = torch.rand(batch, num_tokens, generator=generator, device=device)
    ids = noise.argsort(dim=1)[:, :n_keep]                                      # (B, n_keep)
    return torch.zeros(batch, num_tokens, dtype=torch.bool, device=device).scatter(1, ids, True)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, norm_pix: bool = False) -> torch.Tensor:
    r"""Mean squared error over the MASKED patches only (MAE).

    .. math:: L = \frac{\sum_{n \notin vis} \overline{(\hat P_n - \tilde P_n)^2}}{|\{n \notin vis\}|},
        \quad \tilde P_n = (P_n - \mu_n) / \sqrt{\sigma_n^2 + 10^{-6}} \text{ if norm\_pix}

    Args:
        pred, target: ``[B, N, D]`` predicted and true patch pixels.
        keep: ``[B, N]`` bool, True = visible (excluded from the loss).
        norm_pix: normalise each target patch by its own mean and variance (MAE's norm_pix_loss; off by
            default, see MASK_RATIO's comment).
    """
    if pred.shape != target.shape or tuple(keep.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and keep {tuple(keep.shape)} "
                         f"must be [B, N, D], [B, N, D], [B, N]")
    if norm_pix:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred - target).pow(2).mean(-1)                                 # (B, N)
    masked = (~keep).to(per_patch.dtype)
    return (per_patch * masked).sum() / masked.sum().clamp_min(1.0)


def mae_loss(mae: SpikformerMAE, x: torch.Tensor, mask_ratio: float = MASK_RATIO, norm_pix: bool = False,
             keep: torch.Tensor | None = None) -> torch.Tensor:
    """Reconstruction loss of ``mae`` (or its DDP wrapper) on images ``x`` ``[B, C, H, W]`` under a fresh
    random mask (or ``keep``)."""
    core = getattr(mae, "module", mae)  # DistributedDataParallel hides the attributes; call the wrapper though
    if keep is None:
        keep = random_keep_mask(x.shape[-4], core.num_tokens, mask_ratio, device=x.device)
    imgs = x if x.dim() == 4 else x[0]  # the target is the image (frame 0 of a direct-encoded sequence)
    return masked_mse(mae(x, keep), patchify(imgs, core.patch), keep, norm_pix)


class WithoutLabels(Dataset):
    """``dataset``'s images with every label replaced by 0.0: pretraining provably sees no labels."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i][0], torch.zeros(())


def pretrain(encoder: Spikformer, train_set: Dataset, config: TrainConfig, mask_ratio: float = MASK_RATIO,
             norm_pix: bool = False, eval_set: Dataset | None = None, stop: StopRequest | None = None,
             **decoder) -> tuple[SpikformerMAE, dict]:
    """Masked-image pretraining of ``encoder`` (in place) with the shared trainer; labels are dropped.

    Writes ``config.out_dir/pretrained.pt``: the encoder as a ``save_model`` file (config + weights,
    head untrained), which ``init_from`` and ``load_model`` read. ``decoder`` goes to ``SpikformerMAE``
    (decoder_dim, decoder_depth, decoder_heads).

    Returns:
        The trained ``SpikformerMAE`` (for reconstructions) and the trainer's summary (plus the file path).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}")
    mae = SpikformerMAE(encoder, **decoder)

    def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return mae_loss(model, x, mask_ratio, norm_pix)  # the trainer's "logits" are the loss itself

    summary = train(mae, WithoutLabels(train_set), config, None if eval_set is None else WithoutLabels(eval_set),
                    forward=forward, loss_fn=lambda loss, _: loss, stop=stop)
    path = Path(config.out_dir) / PRETRAINED_NAME
    if summary["rank"] == 0:  # under torchrun every process gets here: one writes
        save_model(encoder, path,
                   pretrain=dict(mask_ratio=mask_ratio, norm_pix=norm_pix, steps=summary["steps"],
                                 images=len(train_set), batch_size=config.batch_size, lr=config.lr,
                                 final_loss=summary["final_train_loss"], **mae.decoder_config))
    return mae, {**summary, "pretrained": str(path)}


def init_from(model: Spikformer, source: str | os.PathLike | dict) -> Spikformer:
    """Copy the pretrained stem and blocks (``embed.*``, ``blocks.*``) into ``model``; the head stays as it is.

    ``source``: a ``pretrained.pt`` / ``save_model`` file, a trainer ``ckpt.pt`` of a ``SpikformerMAE``
    (keys ``encoder.*``), or such a state dict. Every encoder tensor of ``model`` must be found with
    the same shape, else ValueError (a different preset or stem).
    """
    state = _load_state(source) if not isinstance(source, dict) else source
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    own = {k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIXES)}
    missing = sorted(k for k in own if k not in state)
    wrong = sorted(k for k in own if k in state and state[k].shape != own[k].shape)
    if missing or wrong:
        raise ValueError(f"source does not fit this model's encoder: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"shape mismatch {wrong[:5]}; pretrain with the same preset and stem")
    model.load_state_dict({k: state[k] for k in own}, strict=False)
    return model


def _load_state(path) -> dict:
    obj = read_file(path, ("model", "checkpoint"))
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise CheckpointError(f"{path}: no 'model' state dict (expected a save_model file or a trainer ckpt.pt)")
    return obj["model"]
