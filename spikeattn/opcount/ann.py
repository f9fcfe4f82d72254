"""The ANN twin: the same architecture with every spiking neuron replaced by ReLU, counted densely."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from torch import nn

from spikeattn.opcount.counter import NEURON_TYPES, run_count
from spikeattn.opcount.report import OpReport, format_table, human


def ann_twin(model: nn.Module, neuron_types) -> nn.Module:
    """A deep copy of ``model`` whose neuron modules are ReLUs (same module paths)."""
    twin = copy.deepcopy(model)
    relus: dict[int, nn.ReLU] = {}  # a neuron shared under two names stays one (shared) ReLU
    for name, module in list(twin.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, neuron_types):
                setattr(module, child_name, relus.setdefault(id(child), nn.ReLU()))
    if isinstance(twin, neuron_types):
        return nn.ReLU()
    return twin


class AnnComparison:
    """An SNN report next to its ANN twin's: ``.snn``, ``.ann``, ``.table()``, ``.plot()``, ``.ratios()``."""

    def __init__(self, snn: OpReport, ann: OpReport):
        self.snn, self.ann = snn, ann

    def ratios(self, profile="45nm") -> dict[str, float]:
        """ANN / SNN for operations (dense MACs vs SOPs + remaining MACs), energy and bytes."""
        snn_ops = self.snn.total("sop") + self.snn.total("real_mac")
        e_snn, e_ann = self.snn.energy(profile)["total"], self.ann.energy(profile)["total"]

        def ratio(a, b):
            return a / b if b else float("inf")

        return {"ops": ratio(self.ann.total("mac"), snn_ops),
                "compute_energy": ratio(e_ann["compute_j"], e_snn["compute_j"]),
                "energy": ratio(e_ann["total_j"], e_snn["total_j"]),
                "bytes": ratio(self.ann.total("bytes"), self.snn.total("bytes"))}

    def rows(self, profile="45nm") -> list[list[str]]:
        e_snn, e_ann = self.snn.energy(profile), self.ann.energy(profile)
        s_rows, a_rows = self.snn.by_module, self.ann.by_module
        paths = list(s_rows) + [p for p in a_rows if p not in s_rows]
        zero = dict.fromkeys(("sop", "real_mac", "mac", "bytes"), 0)
        out = []
        for path in [*paths, "total"]:
            if path == "total":
                s = {k: self.snn.total(k) for k in zero}
                a = {k: self.ann.total(k) for k in zero}
                es, ea = e_snn["total"]["total_j"], e_ann["total"]["total_j"]
            else:
                s, a = s_rows.get(path, zero), a_rows.get(path, zero)
                es = e_snn["by_module"].get(path, {}).get("total_j", 0.0)
                ea = e_ann["by_module"].get(path, {}).get("total_j", 0.0)
            out.append([path, human(s["sop"]), human(s["real_mac"]), human(a["mac"]),
                        f"{es:.3g}", f"{ea:.3g}", human(s["bytes"]), human(a["bytes"])])
        return out

    def table(self, profile="45nm") -> str:
        """Per-module SNN vs ANN: ops, energy (J, under ``profile``) and bytes, then the ratios."""
        header = ["module", "SNN SOP", "SNN MAC", "ANN MAC", "SNN J", "ANN J", "SNN bytes", "ANN bytes"]
        r = self.ratios(profile)
        summary = (f"ANN/SNN ({profile}): ops x{r['ops']:.3g}, energy x{r['energy']:.3g} "
                   f"(compute only x{r['compute_energy']:.3g}), bytes x{r['bytes']:.3g}")
        return format_table(header, self.rows(profile)) + "\n" + summary

    def to_json(self, path, profile="45nm") -> Path:
        data = {"snn": self.snn.as_dict(), "ann": self.ann.as_dict(), "ratios": self.ratios(profile),
                "energy": {"snn": self.snn.energy(profile), "ann": self.ann.energy(profile)}}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
        return path

    def plot(self, path, profile="45nm") -> Path:
        """PNG: per-layer ops, energy and bytes, SNN and ANN side by side."""
        from spikeattn.opcount.plot import plot_comparison

        return plot_comparison(self, Path(path), profile)


def compare_ann(model: nn.Module, example_input, *, extra_rules=None, neuron_types=None,
                **forward_kwargs) -> AnnComparison:
    """Count ``model`` and its ANN twin (every neuron replaced by ReLU, every operand real-valued).

    Arguments as ``spikeattn.opcount.count``. Returns an ``AnnComparison`` with ``.snn``, ``.ann``,
    ``.ratios(profile)``, ``.table(profile)``, ``.plot(path)``, ``.to_json(path)``.

    Example:
        >>> cmp = compare_ann(model, images)
        >>> print(cmp.table("45nm"))
    """
    snn = run_count(model, example_input, forward_kwargs, extra_rules=extra_rules, neuron_types=neuron_types)
    neuron_types = tuple(neuron_types) if neuron_types is not None else NEURON_TYPES
    twin = ann_twin(model, neuron_types)
    ann = run_count(twin, example_input, forward_kwargs, extra_rules=extra_rules, neuron_types=neuron_types,
                    event_driven=False)
    return AnnComparison(snn, ann)
