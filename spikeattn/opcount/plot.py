"""Matplotlib figures of a report (imported lazily: matplotlib is only needed to plot)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    from spikeattn._optional import require

    matplotlib = require("matplotlib", "the op-count plot")
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, labels, series: dict[str, list[float]], ylabel: str, log: bool = True):
    n = len(series)
    width = 0.8 / max(n, 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + (i - (n - 1) / 2) * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    if log and any(v > 0 for vs in series.values() for v in vs):
        ax.set_yscale("log")
    ax.legend(fontsize=8)


def plot_report(report, path: Path) -> Path:
    plt = _pyplot()
    rows = {p: r for p, r in report.by_module.items() if r["mac"] or r["sop"]}
    rates = report.firing_rates
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6, 0.5 * max(len(rows), len(rates)) + 3), 7))
    _bars(ax1, list(rows), {"SOP (event-driven)": [r["sop"] for r in rows.values()],
                            "MAC (dense)": [r["mac"] for r in rows.values()],
                            "MAC (real-valued input)": [r["real_mac"] for r in rows.values()]}, "operations")
    ax1.set_title("operations per layer")
    _bars(ax2, list(rates), {"firing rate": list(rates.values())}, "spikes / neuron / step", log=False)
    ax2.set_title("firing rate per neuron layer")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_comparison(cmp, path: Path, profile: str) -> Path:
    plt = _pyplot()
    s_rows, a_rows = cmp.snn.by_module, cmp.ann.by_module
    labels = [p for p in s_rows if s_rows[p]["mac"] or s_rows[p]["sop"]]
    e_s, e_a = cmp.snn.energy(profile)["by_module"], cmp.ann.energy(profile)["by_module"]
    fig, axes = plt.subplots(3, 1, figsize=(max(6, 0.5 * len(labels) + 3), 10))
    _bars(axes[0], labels, {"SNN SOP + MAC": [s_rows[p]["sop"] + s_rows[p]["real_mac"] for p in labels],
                            "ANN MAC": [a_rows.get(p, {}).get("mac", 0) for p in labels]}, "operations")
    _bars(axes[1], labels, {"SNN": [e_s[p]["total_j"] for p in labels],
                            "ANN": [e_a.get(p, {}).get("total_j", 0.0) for p in labels]}, f"energy (J, {profile})")
    _bars(axes[2], labels, {"SNN": [s_rows[p]["bytes"] for p in labels],
                            "ANN": [a_rows.get(p, {}).get("bytes", 0) for p in labels]}, "bytes moved")
    axes[0].set_title("SNN vs ANN twin, per layer")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
