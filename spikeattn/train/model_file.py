"""A trained model as one file: its family, config and weights, so any tool can rebuild it."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import nn

from spikeattn.models.spikegpt import SpikeGPT, SpikeGPTConfig
from spikeattn.models.spikformer import Spikformer, SpikformerConfig
from spikeattn.train.checkpoint import CheckpointError, save_checkpoint

FAMILIES = {"spikformer": (Spikformer, SpikformerConfig), "spikegpt": (SpikeGPT, SpikeGPTConfig)}


def save_model(model: nn.Module, path: str | os.PathLike, **extra) -> Path:
    """Write ``{family, model_config, model, **extra}`` atomically; ``extra`` must be plain data."""
    family = next((name for name, (cls, _) in FAMILIES.items() if isinstance(model, cls)), None)
    if family is None:
        raise TypeError(f"save_model saves {sorted(FAMILIES)} models, got {type(model).__name__}")
    obj = {"family": family, "model_config": dataclasses.asdict(model.config), "model": model.state_dict(), **extra}
    return save_checkpoint(obj, path)


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """The model saved by ``save_model`` (in eval mode) and its extra entries."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged zip/pickle; name the file either way
        raise CheckpointError(f"{path}: cannot read this model file ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or obj.get("family") not in FAMILIES:
        raise CheckpointError(f"{path}: not a spikeattn model file (no known 'family' entry)")
    cls, config_cls = FAMILIES[obj["family"]]
    config = obj["model_config"]
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    model = cls(config_cls(**config))
    model.load_state_dict(obj["model"])
    extra = {k: v for k, v in obj.items() if k not in ("family", "model_config", "model")}
    return model.eval(), extra
