"""Spiking transformer models: config dataclasses and named presets."""

from spikeattn.models import spikegpt as _spikegpt
from spikeattn.models import spikformer as _spikformer
from spikeattn.models.spikegpt import SpikeGPT, SpikeGPTConfig, spikegpt
from spikeattn.models.spikformer import Spikformer, SpikformerConfig, spikformer

__all__ = ["Spikformer", "SpikformerConfig", "spikformer", "SpikeGPT", "SpikeGPTConfig", "spikegpt",
           "list_presets", "PRESETS"]

# Every model family's presets, by family name; another family joins with one line here.
PRESETS: dict[str, dict[str, dict]] = {"spikformer": _spikformer.PRESETS, "spikegpt": _spikegpt.PRESETS}


def list_presets(family: str | None = None) -> list[str]:
    """Names of the presets (of one family, ``"spikformer"`` or ``"spikegpt"``, or of all), sorted."""
    if family is not None and family not in PRESETS:
        raise ValueError(f"unknown model family {family!r}; choose from {sorted(PRESETS)}")
    families = [family] if family else list(PRESETS)
    return sorted(name for f in families for name in PRESETS[f])
