"""``OpReport``: the counts of one counted forward, per module, with totals, energy and output."""

from __future__ import annotations

import json
from pathlib import Path

from spikeattn.opcount.neurobench import neurobench_metrics
from spikeattn.opcount.profiles import load_profile, module_energy
from spikeattn.opcount.rules import OP_FIELDS

# Keys of ``by_module`` rows and of ``total``: op fields (rules.py), then neuron fields.
KEYS = (*OP_FIELDS, "neuron", "spikes")

_COLUMNS = (("mac", "MAC dense"), ("sop", "SOP"), ("sop_nzw", "SOP nz-w"), ("real_mac", "MAC real"),
            ("sop_mul", "MUL int"),
            ("pairs", "pairs"), ("neuron", "neuron upd"), ("rate", "rate"), ("bytes", "bytes"))


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Aligned text: first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])]) if rows else line(header)


def human(x: float) -> str:
    """3 significant digits with a k/M/G/T suffix (counts) - short enough for a table cell."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}" if isinstance(x, float) and x != int(x) else str(int(x))


class OpReport:
    """Counts of one forward, attributed to the innermost module that ran each op.

    ``by_module[path]`` has, per module: ``mac`` (dense MACs), ``real_mac`` (MACs of ops without an
    event-valued operand), ``sop`` (synaptic accumulates), ``sop_mul`` (multiplies instead, for
    integer-valued inputs), ``pairs`` / ``event_min`` (spike x spike matmuls), ``neuron`` (updates),
    ``spikes`` and ``bytes`` (estimated bytes moved). ``uncounted`` lists ops that ran without a
    counting rule (``{op name: calls}``); when it is not empty, ``lower_bound`` is True and every
    total and energy figure is a lower bound. See ``docs/opcount.md``.
    """

    def __init__(self, ops, by_op, neurons, module_types, *, event_driven=True, uncounted=None, activations=None,
                 model_figures=None, samples=1):
        self._ops, self.by_op, self.neurons = ops, by_op, neurons
        self.module_types, self.event_driven = module_types, event_driven
        self.uncounted: dict[str, int] = dict(uncounted or {})  # op name -> calls that ran without a rule
        self.activations: dict[str, list[int]] = dict(activations or {})  # path -> [nonzero outputs, outputs]
        self.model_figures: dict = dict(model_figures or {})  # footprint, (zeros, weights) pairs
        self.samples = samples  # samples in the counted input(s): the per-sample divisor

    @classmethod
    def sum(cls, reports: list["OpReport"]) -> "OpReport":
        """One report for several counted forwards of the same model (e.g. the batches of a loader):
        every count, call and sample added up; the model's own figures taken from the first."""
        if not reports:
            raise ValueError("OpReport.sum needs at least one report")

        def add(tables):
            out: dict = {}
            for table in tables:
                for key, row in table.items():
                    acc = out.setdefault(key, dict.fromkeys(row, 0) if isinstance(row, dict) else [0] * len(row))
                    for k in (row if isinstance(row, dict) else range(len(row))):
                        if isinstance(row[k], (int, float)):
                            acc[k] += row[k]
                        else:
                            acc[k] = row[k]  # a neuron's type name
            return out

        first = reports[0]
        uncounted: dict[str, int] = {}
        for r in reports:
            for op, calls in r.uncounted.items():
                uncounted[op] = uncounted.get(op, 0) + calls
        return cls(add(r._ops for r in reports), add(r.by_op for r in reports), add(r.neurons for r in reports),
                   {k: v for r in reports for k, v in r.module_types.items()}, event_driven=first.event_driven,
                   uncounted=uncounted, activations=add(r.activations for r in reports),
                   model_figures=first.model_figures, samples=sum(r.samples for r in reports))

    @property
    def footprint_bytes(self) -> int:
        """Bytes of the model's parameters and buffers."""
        return self.model_figures.get("footprint_bytes", 0)

    @property
    def connection_sparsity(self) -> float:
        """Fraction of zero entries among the weights the counted forward read (functional ones included)."""
        zeros, total = self.model_figures.get("used_connections", (0, 0))
        return zeros / total if total else 0.0

    def neurobench(self) -> dict:
        """NeuroBench 2.3's metrics by its names and definitions, per sample (``docs/opcount.md``):
        ``Footprint``, ``ConnectionSparsity``, ``ActivationSparsity``, ``SynapticOperations``
        (``Effective_MACs``, ``Effective_ACs``, ``Dense``), ``MembraneUpdates``."""
        return neurobench_metrics(self)

    @property
    def lower_bound(self) -> bool:
        """True when some op ran without a counting rule: totals and energy are then lower bounds."""
        return bool(self.uncounted)

    @property
    def by_module(self) -> dict[str, dict[str, int]]:
        """``{module path: {key: count}}`` in model order, for modules that did any counted work."""
        rows = {}
        for path in self.module_types:
            if path not in self._ops and path not in self.neurons:
                continue
            row = dict(self._ops.get(path, dict.fromkeys(OP_FIELDS, 0)))
            n = self.neurons.get(path)
            row["neuron"] = n["updates"] if n else 0
            row["spikes"] = n["spikes"] if n else 0
            row["bytes"] += n["bytes"] if n else 0
            rows[path] = row
        return rows

    def total(self, key: str) -> int:
        """Sum of ``key`` over all modules (``"sop"``, ``"mac"``, ``"neuron"``, ``"bytes"``, ...)."""
        if key not in KEYS:
            raise ValueError(f"key must be one of {KEYS}, got {key!r}")
        return sum(row[key] for row in self.by_module.values())

    @property
    def firing_rates(self) -> dict[str, float]:
        """``{neuron module path: spikes / updates}`` over all time steps of the forward."""
        return {p: (n["spikes"] / n["updates"] if n["updates"] else 0.0) for p, n in self.neurons.items()}

    def energy(self, profile="45nm") -> dict:
        """Energy in joules per module and in total, priced with ``profile`` (name, path or Profile).

        Returns ``{"profile", "source", "memory_priced", "lower_bound", "uncounted", "total": {...},
        "by_module": {path: {...}}}``, each entry with ``mac_j, ac_j, neuron_j, spike_j, compute_j,
        memory_j, total_j``; ``lower_bound`` is True when ops in ``uncounted`` ran without a rule.
        """
        p = load_profile(profile)
        by_module = {path: module_energy(row, p) for path, row in self.by_module.items()}
        keys = ("mac_j", "ac_j", "neuron_j", "spike_j", "compute_j", "memory_j", "total_j")
        total = {k: sum(e[k] for e in by_module.values()) for k in keys}
        return {"profile": p.name, "source": p.source, "memory_priced": p.memory_pj_per_byte is not None,
                "lower_bound": self.lower_bound, "uncounted": sorted(self.uncounted),
                "total": total, "by_module": by_module}

    def rows(self) -> list[list[str]]:
        """Table rows (strings), one per module and a total row."""
        rates = self.firing_rates
        out = []
        for path, row in [*self.by_module.items(), ("total", {k: self.total(k) for k in KEYS})]:
            cells = [path, self.module_types.get(path, "")]
            for key, _ in _COLUMNS:
                if key == "rate":
                    cells.append(f"{rates[path]:.3f}" if path in rates else "")
                else:
                    cells.append(human(row[key]))
            out.append(cells)
        return out

    def table(self) -> str:
        """Aligned text table: one row per module, then the totals."""
        text = format_table(["module", "type", *(title for _, title in _COLUMNS)], self.rows())
        if self.uncounted:
            text += ("\nlower bound: no counting rule for " + ", ".join(f"{op} ({n} calls)" for op, n in
                                                                 sorted(self.uncounted.items())))
        return text

    def as_dict(self) -> dict:
        totals = {k: self.total(k) for k in KEYS}
        return {"event_driven": self.event_driven, "samples": self.samples, "totals": totals,
                "lower_bound": self.lower_bound, "uncounted": self.uncounted,
                "footprint_bytes": self.footprint_bytes, "connection_sparsity": self.connection_sparsity,
                "neurobench": self.neurobench(), "by_module": self.by_module,
                "by_op": self.by_op, "firing_rates": self.firing_rates, "neurons": self.neurons,
                "module_types": {p: t for p, t in self.module_types.items() if p in self.by_module}}

    def to_json(self, path, profiles=("45nm", "loihi")) -> Path:
        """Write counts (and the energy under each of ``profiles``) as JSON; returns the path."""
        data = self.as_dict()
        data["energy"] = {str(p): self.energy(p) for p in profiles}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
        return path

    def plot(self, path) -> Path:
        """PNG: per-layer SOPs vs dense MACs (log scale) and firing rates; returns the path."""
        from spikeattn.opcount.plot import plot_report

        return plot_report(self, Path(path))

    def compare_ann(self, *args, **kwargs):
        """Deprecated: ``spikeattn.opcount.compare_ann(model, example_input)``; a report holds no model."""
        raise TypeError("OpReport.compare_ann() is gone: a report is plain data and holds no model; "
                        "call spikeattn.opcount.compare_ann(model, example_input) instead")

    def __repr__(self) -> str:
        return (f"OpReport(mac={self.total('mac')}, sop={self.total('sop')}, real_mac={self.total('real_mac')}, "
                f"neuron={self.total('neuron')}, bytes={self.total('bytes')})")
