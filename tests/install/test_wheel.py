"""The wheel, installed outside the source tree, runs the README's command chain (tests/install/wheel_check.py)."""

from __future__ import annotations

import pytest

from tests.install import wheel_check


def test_wheel_runs_the_readme_commands_short():
    """--no-deps install beside the test env's torch: packaging, shipped files, entry point, relative paths."""
    result = wheel_check.check(full=False)
    assert "site-packages/spikeattn/__init__.py" in result["spikeattn_imported_from"]
    assert "saved to lava_out.npy" in result["lava_run"] and result["bench_json"]
    assert all(step["returncode"] == 0 for step in result["steps"])


@pytest.mark.slow
def test_wheel_all_extras_fresh_venv_with_lava_env():
    """pip install torch==2.13.0 <wheel>[all] in a fresh venv; `spikeattn lava-env` builds the Lava env (minutes)."""
    result = wheel_check.check(full=True)
    assert "saved to lava_out.npy" in result["lava_run"] and result["bench_json"]
    assert any(step["command"].endswith("lava-env") for step in result["steps"])
