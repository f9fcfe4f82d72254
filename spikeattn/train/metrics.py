"""Metrics on disk: JSON lines while training, a summary JSON and a PNG of the curves at the end."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

__all__ = ["MetricsLog", "write_json", "plot_curves"]


class MetricsLog:
    """Append-only ``metrics.jsonl``; ``history`` keeps every record (it also goes into checkpoints)."""

    def __init__(self, path: str | os.PathLike, enabled: bool, history: list[dict] | None = None):
        self.path, self.enabled = Path(path), enabled
        self.history = list(history or [])
        if enabled:
            # Rewrite from the history so that lines logged after the checkpoint of a killed run
            # (and never reached by the resumed one) do not appear twice.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in self.history)

    def log(self, record: dict) -> None:
        self.history.append(record)
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def write_json(path: str | os.PathLike, obj: dict) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (parent folders created, temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def plot_curves(history: list[dict], path: str | os.PathLike) -> Path | None:
    """Loss (left) and accuracy (right) against the step, train and eval, as a PNG.

    Optional: without matplotlib (the ``[train]`` extra) the run still finishes and saves everything
    else; a warning says how to get the plot. Returns the path, or None when nothing was drawn.
    """
    try:
        import matplotlib  # lazy: only rank 0 at the end of a run needs it
    except ImportError:
        from spikeattn._optional import install_hint

        warnings.warn(f"{path} not drawn: matplotlib is not installed ({install_hint('matplotlib')}); "
                      "metrics.jsonl has the same curves", RuntimeWarning, stacklevel=2)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, style in (("train", "-"), ("eval", "o-")):
        rows = [r for r in history if r.get("kind") == kind]
        steps = [r["step"] for r in rows]
        ax_loss.plot(steps, [r["loss"] for r in rows], style, label=kind)
        if rows and "acc" in rows[0]:
            ax_acc.plot(steps, [r["acc"] for r in rows], style, label=kind)
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a regression run has no accuracy curve
            ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
