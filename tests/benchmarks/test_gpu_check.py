"""`make gpu-check` without a GPU: it stops at once with a clear message and exit status 2 (no GPU is lent to CI)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize("nvidia_smi", [None, "echo 'No devices were found'; exit 6", "exit 0"])
def test_without_a_gpu_exits_at_once(tmp_path, nvidia_smi):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "timeout", "grep", "head", "tr", "dirname", "mktemp", "rm"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    if nvidia_smi is not None:  # a driver tool that finds no GPU
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    start = time.perf_counter()
    out = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out.json")], capture_output=True, text=True,
                         env={**os.environ, "PATH": str(bin_dir)}, timeout=60)
    assert out.returncode == 2
    assert "gpu-check: no NVIDIA GPU on this machine" in out.stderr and "nothing was run" in out.stderr
    assert time.perf_counter() - start < 5 and not (tmp_path / "out.json").exists()


def test_make_target_exists():
    make = (ROOT / "Makefile").read_text()
    assert "gpu-check:\n\tbash benchmarks/gpu_check.sh" in make
