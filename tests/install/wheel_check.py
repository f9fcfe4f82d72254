"""Install spikeattn as a user does and run the README's command-line chain outside the source tree.

    python tests/install/wheel_check.py --full --json benchmarks/results/wheel_check.json

Builds the wheel, makes a venv in a temporary folder and runs, from a folder outside the repository
and with relative paths: train spikformer -> count -> train spikegpt -> generate -> export ->
lava-env -> lava-run -> bench lif. ``--full``: a fresh venv with ``pip install torch==2.13.0
<wheel>[all]`` and a Lava env built by ``spikeattn lava-env`` (minutes). Short (the test in make
test): the wheel installed with --no-deps into a venv that sees the test env's packages (torch and
the extras) through a .pth file, and the repository's Lava env; the same commands, smaller.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"  # the CPU wheel pip takes from local disk here (a bare `torch` would fetch a CUDA build)


def _run(cmd: list[str], cwd: Path, env: dict, log: list, timeout: float = 900) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    log.append({"command": " ".join(map(str, cmd)), "returncode": out.returncode,
                "seconds": round(time.perf_counter() - start, 1), "output_tail": (out.stdout + out.stderr)[-1500:]})
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def build_wheel(out_dir: Path, log: list) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(ROOT)], ROOT,
         os.environ.copy(), log)
    return next(out_dir.glob("spikeattn-*.whl"))


def make_venv(folder: Path, wheel: Path, full: bool, log: list) -> Path:
    env = os.environ.copy()
    if full:
        _run([sys.executable, "-m", "venv", str(folder)], folder.parent, env, log)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, TORCH], folder.parent, env, log)
        _run([*pip, f"{wheel}[all]"], folder.parent, env, log)
    else:
        _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], folder.parent, env, log)
        _run([sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python"), "install", "-q", "--no-deps",
              "--disable-pip-version-check", str(wheel)], folder.parent, env, log)
        site = Path(_run([str(folder / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         folder.parent, env, log).stdout.strip())
        (site / "_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch and extras, appended last
    return folder / "bin"


def run_readme_chain(bin_dir: Path, work: Path, full: bool, log: list) -> dict:
    """The README's commands, relative paths, from ``work`` (outside the repository)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    if full:
        env["SPIKEATTN_CACHE"] = str(work / "kernel-cache")  # kernels built from the wheel's own sources
        env["XDG_CACHE_HOME"] = str(work / "user-cache")  # spikeattn lava-env builds there; run_lava finds it
        env.pop("SPIKEATTN_LAVA_PYTHON", None)
    elif "SPIKEATTN_LAVA_PYTHON" not in env and (ROOT / ".venv-lava" / "bin" / "python").is_file():
        env["SPIKEATTN_LAVA_PYTHON"] = str(ROOT / ".venv-lava" / "bin" / "python")
    sa = "spikeattn"
    steps = ["--steps", "30"] if full else ["--steps", "2", "--train-limit", "64", "--test-limit", "64",
                                            "--recalibrate-batches", "1", "--batch-size", "16"]
    where = _run([str(bin_dir / "python"), "-c", "import spikeattn, sys; print(spikeattn.__file__)"], work, env, log)
    _run([sa, "train", "spikformer", *steps, "--threads", "2", "--no-progress", "--set", "T=1", "--out", "runs/cli"],
         work, env, log)
    _run([sa, "count", "runs/cli/model.pt"], work, env, log)
    small = [] if full else ["--plays", "1", "--eval-windows", "4", "--block", "32", "--batch-size", "4"]
    _run([sa, "train", "spikegpt", "--steps", "30" if full else "2", *small, "--threads", "2",
          "--no-progress", "--out", "runs/gpt"], work, env, log)
    _run([sa, "generate", "runs/gpt/model.pt", "--prompt", "ROMEO:", "--tokens", "20"], work, env, log)
    _run([sa, "export", "runs/cli/model.pt", "--out", "runs/lava"], work, env, log)
    if full:
        _run([sa, "lava-env"], work, env, log)
    _run([str(bin_dir / "python"), "-c", "import numpy as np; np.save('spikes.npy', "
          "(np.random.default_rng(0).random((1, 2, 1, 28, 28)) > 0.5).astype('f4'))"], work, env, log)
    lava = _run([sa, "lava-run", "runs/lava", "--input", "spikes.npy", "--out", "lava_out.npy"], work, env, log)
    _run([sa, "bench", "lif", "--quick", "--repeats", "1"], work, env, log)
    return {"spikeattn_imported_from": where.stdout.strip(), "lava_run": lava.stdout.strip(),
            "bench_json": (work / "bench_lif.json").is_file()}


def check(full: bool) -> dict:
    log: list = []
    with tempfile.TemporaryDirectory(prefix="spikeattn-wheel-") as tmp:
        tmp = Path(tmp)
        wheel = build_wheel(tmp / "dist", log)
        bin_dir = make_venv(tmp / "venv", wheel, full, log)
        (tmp / "work").mkdir()
        result = run_readme_chain(bin_dir, tmp / "work", full, log)
        assert result["spikeattn_imported_from"].startswith(str(tmp / "venv")), result
    return {"mode": "full" if full else "short", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "wheel": wheel.name, **result, "steps": log}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="fresh venv with torch and [all] from the registry, lava-env built")
    p.add_argument("--json", type=Path, help="write the record here")
    args = p.parse_args(argv)
    record = check(args.full)
    text = json.dumps(record, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
