"""Spiking transformer models: config dataclasses and named presets."""

import ast

from spikeattn.models import spikegpt as _spikegpt
from spikeattn.models import spikformer as _spikformer
from spikeattn.models.spikegpt import SpikeGPT, SpikeGPTConfig, spikegpt
from spikeattn.models.spikformer import Spikformer, SpikformerConfig, spikformer
from spikeattn.models.spikformer_mae import SpikformerMAE

__all__ = ["Spikformer", "SpikformerConfig", "spikformer", "SpikformerMAE", "SpikeGPT", "SpikeGPTConfig", "spikegpt",
           "list_presets", "parse_overrides", "PRESETS"]

# Every model family's presets, by family name; another family joins with one line here.
PRESETS: dict[str, dict[str, dict]] = {"spikformer": _spikformer.PRESETS, "spikegpt": _spikegpt.PRESETS}


def parse_overrides(pairs: list[str]) -> dict:
    """``["T=2", "pool_stages=0,1"]`` -> ``{"T": 2, "pool_stages": (0, 1)}``: Python literals, else strings."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"overrides are key=value, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def list_presets(family: str | None = None) -> list[str]:
    """Names of the presets (of one family, ``"spikformer"`` or ``"spikegpt"``, or of all), sorted."""
    if family is not None and family not in PRESETS:
        raise ValueError(f"unknown model family {family!r}; choose from {sorted(PRESETS)}")
    families = [family] if family else list(PRESETS)
    return sorted(name for f in families for name in PRESETS[f])
