"""Loihi hardware profiles (``hardware/profiles/loihi1.toml``, ``loihi2.toml`` or a user path).

A profile holds the per-core limits, the chip size, the systems it fits, the weight precision and
the per-operation energy and time; every number has an entry ``[sources]."table.key"`` with a
``source`` and a ``confidence`` (high, medium, low), because Intel publishes Loihi 2's per-core
budgets only partly. The file is also a valid ``spikeattn.opcount`` energy profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from spikeattn.opcount.profiles import Profile, load_profile, read_profile_toml

CONFIDENCE = ("high", "medium", "low")

# Every field a Loihi profile must have (``table.key``); each needs a [sources] entry.
FIELDS = (
    "core.neurons", "core.input_axons", "core.output_axons", "core.synapse_memory_words", "core.word_bits",
    "core.max_words_per_axon", "core.synapses_per_group", "core.group_header_bits", "core.index_bits",
    "chip.cores", "precision.weight_bits",
    "compute.ac_pj", "compute.mac_pj", "neuron.active_pj", "neuron.inactive_pj", "spike.move_pj",
    "latency.synop_ns",
)


@dataclass(frozen=True)
class LoihiProfile:
    """A loaded Loihi profile: ``values[field]`` (numbers), ``systems`` ``{name: chips}``, ``sources``."""

    name: str
    path: Path
    values: dict
    systems: dict
    sources: dict
    energy: Profile          # the same file as an opcount energy profile

    def __getitem__(self, field: str):
        return self.values[field]

    @property
    def synapse_memory_bits(self) -> int:
        return self["core.synapse_memory_words"] * self["core.word_bits"]


def _positive(value, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"Loihi profile {where}: field '{field}' must be a number > 0, got {value!r}")
    return value


def load_loihi_profile(profile: str | Path | LoihiProfile = "loihi2") -> LoihiProfile:
    """Load ``"loihi1"``, ``"loihi2"`` or a TOML path; ValueError names a missing field or source."""
    if isinstance(profile, LoihiProfile):
        return profile
    if not isinstance(profile, (str, Path)):
        raise TypeError(f"profile must be 'loihi1', 'loihi2', a path or a LoihiProfile, got {type(profile).__name__}")
    path, data = read_profile_toml(profile, "Loihi", names=["loihi1", "loihi2"])
    where = repr(str(path))
    values = {}
    for field in FIELDS:
        table, key = field.split(".")
        if key not in data.get(table, {}):
            raise ValueError(f"Loihi profile {where} is missing the field '{field}'")
        values[field] = _positive(data[table][key], field, where)
    systems = data.get("systems") or {}
    if not systems:
        raise ValueError(f"Loihi profile {where} is missing the table [systems] (name = number of chips)")
    for name, chips in systems.items():
        if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
            raise ValueError(f"Loihi profile {where}: systems.{name} must be a whole number of chips >= 1, got {chips!r}")
    sources = data.get("sources") or {}
    for field in (*FIELDS, *(f"systems.{s}" for s in systems)):
        entry = sources.get(field)
        if not isinstance(entry, dict) or not entry.get("source") or entry.get("confidence") not in CONFIDENCE:
            raise ValueError(f"Loihi profile {where}: field '{field}' needs [sources].\"{field}\" = "
                             f"{{ source = \"...\", confidence = \"high|medium|low\" }}, got {entry!r}")
    return LoihiProfile(name=str(data.get("name", path.stem)), path=path, values=values, systems=dict(systems),
                        sources=sources, energy=load_profile(path))
