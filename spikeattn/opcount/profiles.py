r"""Energy profiles (``hardware/profiles/*.toml``) and the energy of a count.

A profile is a TOML file with ``name``, ``source`` and ``[compute] mac_pj, ac_pj`` (picojoules per
op); optional tables price neurons (``[neuron] update_pj`` or ``active_pj`` + ``inactive_pj``), spike
moves (``[spike] move_pj``) and memory (``[memory] pj_per_byte``).

.. math::
    E = e_{mac} \cdot \mathrm{real\_mac} + e_{ac} \cdot \mathrm{sop} + E_{neuron} + e_{spike} \cdot \mathrm{spikes}
        + e_{byte} \cdot \mathrm{bytes}
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from spikeattn._paths import hardware_dir

PJ = 1e-12


def profile_dir() -> Path:
    """The folder of the shipped profiles."""
    return hardware_dir() / "profiles"


def list_profiles() -> list[str]:
    """Names of the shipped profiles (file stems), sorted."""
    return sorted(p.stem for p in profile_dir().glob("*.toml"))


@dataclass(frozen=True)
class Profile:
    """Per-operation energies in picojoules; None where the profile does not price that cost."""

    name: str
    source: str
    mac_pj: float
    ac_pj: float
    neuron_update_pj: float | None = None
    neuron_active_pj: float | None = None
    neuron_inactive_pj: float | None = None
    spike_move_pj: float | None = None
    memory_pj_per_byte: float | None = None
    description: str = ""


def _field(data: dict, dotted: str, where: str, required: bool = True):
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if required:
                raise ValueError(f"energy profile {where} is missing the field '{dotted}'")
            return None
        node = node[part]
    return node


def _number(data: dict, dotted: str, where: str, required: bool = True) -> float | None:
    value = _field(data, dotted, where, required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"energy profile {where}: field '{dotted}' must be a number >= 0 (picojoules), got {value!r}")
    return float(value)


def read_profile_toml(profile: str | Path, kind: str, names: list[str] | None = None) -> tuple[Path, dict]:
    """``(path, parsed TOML)`` of a shipped profile by name (one of ``names``, default every shipped one)
    or of a ``.toml`` path; ``kind`` ("energy", "Loihi") names the profile in error messages."""
    path = Path(profile)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"{kind} profile file {str(path)!r} does not exist")
    else:
        known = list_profiles() if names is None else names
        if profile not in known:
            raise ValueError(f"unknown {kind} profile {profile!r}; available: {', '.join(known)} "
                             "(or pass the path of a .toml file)")
        path = profile_dir() / f"{profile}.toml"
    with path.open("rb") as f:
        try:
            return path, tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{kind} profile {str(path)!r} is not valid TOML: {e}") from e


def load_profile(profile: str | Path | Profile) -> Profile:
    """Load a shipped profile by name (``"45nm"``, ``"loihi"``...) or a TOML file by path."""
    if isinstance(profile, Profile):
        return profile
    if not isinstance(profile, (str, Path)):
        raise TypeError(f"profile must be a profile name, a path or a Profile, got {type(profile).__name__}")
    path, data = read_profile_toml(profile, "energy")
    where = repr(str(path))
    neuron = dict(
        neuron_update_pj=_number(data, "neuron.update_pj", where, required=False),
        neuron_active_pj=_number(data, "neuron.active_pj", where, required=False),
        neuron_inactive_pj=_number(data, "neuron.inactive_pj", where, required=False),
    )
    if "neuron" in data and neuron["neuron_update_pj"] is None:
        # A [neuron] table must price every update: one cost, or an active/inactive pair.
        _number(data, "neuron.active_pj", where)
        _number(data, "neuron.inactive_pj", where)
    return Profile(
        name=str(_field(data, "name", where)),
        source=str(_field(data, "source", where)),
        mac_pj=_number(data, "compute.mac_pj", where),
        ac_pj=_number(data, "compute.ac_pj", where),
        spike_move_pj=_number(data, "spike.move_pj", where, required="spike" in data),
        memory_pj_per_byte=_number(data, "memory.pj_per_byte", where, required="memory" in data),
        description=str(data.get("description", "")),
        **neuron,
    )


def module_energy(row: dict[str, int], p: Profile) -> dict[str, float]:
    """Energy in joules of one ``OpReport.by_module`` row (op counts, ``neuron``, ``spikes``, ``bytes``)."""
    mac_j = p.mac_pj * row.get("real_mac", 0) * PJ
    ac_j = p.ac_pj * row.get("sop", 0) * PJ
    updates, spikes = row.get("neuron", 0), row.get("spikes", 0)
    if p.neuron_update_pj is not None:
        neuron_j = p.neuron_update_pj * updates * PJ
    elif p.neuron_active_pj is not None:
        neuron_j = (p.neuron_active_pj * spikes + p.neuron_inactive_pj * (updates - spikes)) * PJ
    else:
        neuron_j = 0.0
    spike_j = (p.spike_move_pj or 0.0) * spikes * PJ
    memory_j = (p.memory_pj_per_byte or 0.0) * row.get("bytes", 0) * PJ
    compute_j = mac_j + ac_j + neuron_j + spike_j
    return {"mac_j": mac_j, "ac_j": ac_j, "neuron_j": neuron_j, "spike_j": spike_j, "compute_j": compute_j,
            "memory_j": memory_j, "total_j": compute_j + memory_j}
