"""Helpers shared by the benchmark scripts: timing, saved-tensor bytes, machine facts, table, JSON.

Imported by the scripts in this folder as ``import _common`` (a script's own folder is on sys.path).
Nothing here runs at import time.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from spikeattn.train.metrics import write_json  # noqa: F401  (the bench scripts write through _common)


def time_cpu(fn: Callable[[], object], warmup: int, repeats: int, setup: Callable[[], object] | None = None) -> list[float]:
    """Wall-clock milliseconds of ``fn()`` (``time.perf_counter``), ``repeats`` times after ``warmup`` calls.

    ``setup`` runs before every call, outside the timed region (e.g. clearing a module's state).
    """
    times = []
    for i in range(warmup + repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        if i >= warmup:
            times.append((t1 - t0) * 1e3)
    return times


def time_cuda(fn: Callable[[], object], warmup: int, repeats: int, setup: Callable[[], object] | None = None) -> list[float]:
    """GPU milliseconds of ``fn()`` between two ``torch.cuda.Event`` on the current stream.

    Each repeat is synchronised on its own, so a repeat's time is the device time of that call only.
    """
    times = []
    for i in range(warmup + repeats):
        if setup is not None:
            setup()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(end))
    return times


def summarize(times_ms: list[float]) -> dict:
    """Median and min (both reported: the CPU is shared, so the min is the least disturbed run)."""
    return {"median_ms": statistics.median(times_ms), "min_ms": min(times_ms), "repeats": len(times_ms)}


def saved_bytes(fn: Callable[[], object]) -> tuple[object, int]:
    """Run ``fn()`` (a forward) and count the bytes autograd saves for backward.

    Every tensor packed by ``torch.autograd.graph.saved_tensors_hooks`` is counted by its whole
    storage, once per distinct storage (views of one buffer, or a tensor saved by several nodes, count
    once). Returns ``(fn's result, bytes)``; keep the result alive to run the backward afterwards.
    """
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.nbytes():
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


def version(package: str) -> str | None:
    """Installed version of ``package``, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's 'model name' from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_vector_isa() -> list[str]:
    """The CPU's vector extensions that the kernels' speed and the GEMM / gather choices depend on (read here,
    not from the package: the A/B workers import older packages that lack the helper)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return sorted(set(flags) & {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"})


def environment(packages: tuple[str, ...]) -> dict:
    """Date, Python, package versions and machine facts for a result file."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in packages},
        "cpu_model": cpu_model(),
        "cpu_vector_isa": cpu_vector_isa(),
        "cpu_count": os.cpu_count(),
    }


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Aligned text table. ``columns`` = (header, row key, format spec); a missing value prints '-'."""
    cells = [[h for h, _, _ in columns]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else format(r[k], f)) for _, k, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def with_previous_runs(out: Path, record: dict, summary=lambda old: old) -> dict:
    """``record`` with the record already at ``out`` (through ``summary``) first in its ``previous_runs``, newest first."""
    if Path(out).is_file():
        old = json.loads(Path(out).read_text())
        earlier = old.pop("previous_runs", [])
        record["previous_runs"] = [summary(old), *earlier]
    return record

