"""The CI version of examples/demo.py: a few hundred real Fashion-MNIST images, well above chance."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from spikeattn.data import FASHION_MNIST_DIR

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST not in {FASHION_MNIST_DIR}: run `make data`")
def test_demo_quick(tmp_path):
    summary = load_demo().main(["--quick", "--out", str(tmp_path), "--no-progress"])
    # 500 held-out test images, 10 balanced classes: chance is 10%
    assert summary["final_eval_acc"] > 0.5, summary
    assert summary["steps"] == summary["total_steps"] and not summary["stopped_early"]
    assert json.loads((tmp_path / "summary.json").read_text())["final_eval_acc"] == summary["final_eval_acc"]
    assert (tmp_path / "ckpt.pt").stat().st_size > 0 and (tmp_path / "curves.png").exists()
