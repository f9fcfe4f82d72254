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
def test_demo_quick(tmp_path, capsys):
    result = load_demo().main(["--quick", "--out", str(tmp_path), "--count-images", "8"])
    # 500 held-out test images, 10 balanced classes: chance is 10%
    assert result["test_acc"] > 0.25, result
    assert result["opcount"]["sop"] > 0 and result["opcount"]["mac"] > 0
    assert result["opcount"]["energy_per_image_j"]["45nm"] > 0
    out = capsys.readouterr().out
    assert "energy per image" in out and "demo done: test accuracy" in out
    assert "Lava: " in out  # ran, or said why it was skipped
    assert result["demo_wall_s"] > 0 and result["demo_cpu_s"] > 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["test_acc"] == result["test_acc"]
    for name in ("model.pt", "curves.png", "opcount.json", "opcount.png"):
        assert (tmp_path / name).stat().st_size > 0, name


@pytest.mark.skipif(not (DEMO.parents[1] / ".venv-lava").is_dir(), reason="no .venv-lava (make lava-env)")
def test_demo_lava_step(capsys):
    import spikeattn as sa

    demo = load_demo()
    model = sa.models.spikformer("spikformer-mini-fmnist", T=1)
    result = demo.export_and_run_lava(model, 8)
    out = capsys.readouterr().out
    assert result is not None, out
    assert result["model"] == "spikformer", out   # the Spikformer itself runs in Lava
    assert result["prediction_agreement"] == 1.0 and result["max_abs_logit_diff"] < 1e-4
    assert result["lava_acc"] == result["torch_acc"]
    assert demo.export_and_run_lava(model, 0) is None
    assert "Lava: skipped: --lava-images 0" in capsys.readouterr().out
