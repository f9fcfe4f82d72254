"""The benchmark scripts' tests import them as modules (their folder on sys.path, as when run)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def import_bench(monkeypatch):
    """``import_bench("bench_x")`` imports a script from benchmarks/; torch's thread count (which a
    script's main() sets for the whole process) is restored afterwards."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    threads = torch.get_num_threads()
    yield importlib.import_module
    torch.set_num_threads(threads)
