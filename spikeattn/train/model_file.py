"""A trained model as one file: its family, config and weights, so any tool can rebuild it."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import nn

from spikeattn.models.spikegpt import SpikeGPT, SpikeGPTConfig
from spikeattn.models.spikformer import Spikformer, SpikformerConfig
from spikeattn.train.container import CheckpointError, load_state_checked, read_file, write_file

FAMILIES = {"spikformer": (Spikformer, SpikformerConfig), "spikegpt": (SpikeGPT, SpikeGPTConfig)}


def save_model(model: nn.Module, path: str | os.PathLike, **extra) -> Path:
    """Write ``{family, model_config, model, **extra}`` atomically; ``extra`` must be plain data."""
    family = next((name for name, (cls, _) in FAMILIES.items() if isinstance(model, cls)), None)
    if family is None:
        raise TypeError(f"save_model saves {sorted(FAMILIES)} models, got {type(model).__name__}")
    obj = {"family": family, "model_config": dataclasses.asdict(model.config), "model": model.state_dict(), **extra}
    return write_file(obj, path, "model")


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """The model saved by ``save_model`` (in eval mode) and its extra entries."""
    obj = read_file(path, "model")
    if not isinstance(obj, dict) or obj.get("family") not in FAMILIES:
        raise CheckpointError(f"{path}: not a spikeattn model file (no known 'family' entry)")
    cls, config_cls = FAMILIES[obj["family"]]
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in obj["model_config"].items()}
    try:
        model = cls(config_cls(**config))
    except (TypeError, ValueError) as e:  # a config field this version does not know, or a bad value
        raise CheckpointError(f"{path}: its model config does not build a {obj['family']} here ({e})") from None
    load_state_checked(model, obj["model"], path)
    extra = {k: v for k, v in obj.items() if k not in ("family", "model_config", "model")}
    return model.eval(), extra
