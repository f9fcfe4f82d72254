"""The `spikeattn` command: every subcommand's help, counting a preset, a train -> count/generate round trip, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from spikeattn.cli import build_parser, main
from spikeattn.train.model_file import load_model


@pytest.mark.parametrize("command", ["train", "pretrain", "count", "generate", "export", "lava-run", "bench"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: spikeattn" in capsys.readouterr().out


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "spikeattn.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "count" in out.stdout


def test_count_preset(capsys, tmp_path):
    main(["count", "spikformer-mini-fmnist", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "total" in out and "energy (45nm)" in out and "energy (loihi)" in out
    assert (tmp_path / "r.json").stat().st_size > 0


def test_unknown_preset():
    with pytest.raises(SystemExit, match="neither a model file nor a preset"):
        main(["count", "spikformer-9-9999"])


def test_set_parses_literals():
    args = build_parser().parse_args(["count", "spikformer-mini-fmnist", "--set", "T=2", "pool_stages=(0,1)"])
    from spikeattn.cli import _overrides

    assert _overrides(args.set) == {"T": 2, "pool_stages": (0, 1)}


def test_train_spikformer_then_count(tmp_path, capsys):
    torch.set_num_threads(1)
    main(["train", "spikformer", "--steps", "2", "--batch-size", "8", "--set", "T=1", "--train-limit", "64",
          "--test-limit", "64", "--out", str(tmp_path), "--no-progress"])
    model, extra = load_model(tmp_path / "model.pt")
    assert model.config.T == 1
    assert extra["preset"] == "spikformer-mini-fmnist" and extra["overrides"] == {"T": 1}
    assert 0.0 <= extra["test_acc"] <= 1.0
    main(["count", str(tmp_path / "model.pt")])
    assert "total" in capsys.readouterr().out


def test_train_spikegpt_then_generate(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question. " * 40)
    main(["train", "spikegpt", "--data", str(text), "--steps", "2", "--batch-size", "4",
          "--set", "n_layers=1", "dim=32", "--block", "16", "--out", str(tmp_path), "--no-progress"])
    capsys.readouterr()
    main(["generate", str(tmp_path / "model.pt"), "--prompt", "to be", "--tokens", "10"])
    sample = capsys.readouterr().out.strip()
    assert sample.startswith("to be") and len(sample) == len("to be") + 10


def test_missing_model_file(tmp_path):
    with pytest.raises(SystemExit, match="neither a model file nor a preset"):
        main(["generate", str(tmp_path / "missing.pt")])


def test_generate_needs_a_spikegpt_model():
    with pytest.raises(SystemExit, match="needs a SpikeGPT model file"):
        main(["generate", "spikformer-mini-fmnist"])


def test_corrupt_model_file(tmp_path):
    from spikeattn.train.checkpoint import CheckpointError

    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SystemExit, match=rf"^spikeattn count: error: {bad}: not a spikeattn model file .*--debug"):
        main(["count", str(bad)])
    for argv in (["--debug", "count", str(bad)], ["count", str(bad), "--debug"]):  # the exception itself
        with pytest.raises(CheckpointError, match="not a spikeattn model file"):
            main(argv)


def test_user_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text("hello")
    out = subprocess.run([sys.executable, "-m", "spikeattn.cli", "count", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{bad}: not a spikeattn model file (it starts with b'hello')" in out.stderr
    debug = subprocess.run([sys.executable, "-m", "spikeattn.cli", "--debug", "count", str(bad)],
                           capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


def test_export_errors(tmp_path):
    main(["export", "spikformer-mini-fmnist", "--out", str(tmp_path / "art")])  # the Spikformer exports
    assert (tmp_path / "art" / "graph.json").is_file()
    with pytest.raises(SystemExit, match="neither a model file nor a preset"):
        main(["export", str(tmp_path / "missing.pt")])


def test_lava_run_errors(tmp_path):
    with pytest.raises(SystemExit, match="artifact folder not found"):
        main(["lava-run", str(tmp_path / "none"), "--input", str(tmp_path / "x.npy")])
    with pytest.raises(SystemExit, match="input file not found"):
        main(["lava-run", str(tmp_path), "--input", str(tmp_path / "x.npy")])


def test_bench_unknown_op():
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "nope"])
    assert exit_.value.code == 2  # argparse: invalid choice


def test_pretrain_then_finetune_from_it(tmp_path, capsys):
    torch.set_num_threads(1)
    common = ["--preset", "spikformer-v2-mini-fmnist", "--steps", "2", "--batch-size", "8", "--train-limit", "32",
              "--no-progress"]
    main(["pretrain", "--out", str(tmp_path / "pre"), *common])
    pretrained = tmp_path / "pre" / "pretrained.pt"
    assert pretrained.is_file() and f"--init-from {pretrained}" in capsys.readouterr().out
    main(["train", "spikformer", "--init-from", str(pretrained), "--test-limit", "32", "--out", str(tmp_path / "ft"),
          *common])
    model, extra = load_model(tmp_path / "ft" / "model.pt")
    assert model.config.stem == "scs" and 0.0 <= extra["test_acc"] <= 1.0
    with pytest.raises(SystemExit, match="SCS stem"):      # V1's SPS does not keep masked patches masked
        main(["pretrain", "--preset", "spikformer-mini-fmnist", "--steps", "1", "--out", str(tmp_path / "v1")])
    with pytest.raises(SystemExit, match="pretrained file not found|not found"):
        main(["train", "spikformer", "--init-from", str(tmp_path / "nope.pt"), "--steps", "1", "--train-limit", "8",
              "--out", str(tmp_path / "x")])


def test_lava_env_runs_the_shipped_make_script(tmp_path, monkeypatch, capsys):
    """`spikeattn lava-env [PATH]` runs hardware/lava/make_env.sh (the script of `make lava-env`) into PATH or the user cache."""
    import spikeattn._paths as paths

    hw = tmp_path / "hw"
    (hw / "lava").mkdir(parents=True)
    (hw / "lava" / "make_env.sh").write_text('echo "$1" > "$(dirname "$0")/called"\n')
    monkeypatch.setattr(paths, "hardware_dir", lambda: hw)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    main(["lava-env"])
    assert (hw / "lava" / "called").read_text().strip() == str(tmp_path / "cache" / "spikeattn" / "venv-lava")
    assert "find" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    main(["lava-env", "envs/lava"])  # a relative PATH, resolved; run_lava then needs SPIKEATTN_LAVA_PYTHON
    assert (hw / "lava" / "called").read_text().strip() == str(tmp_path / "envs" / "lava")
    assert f"SPIKEATTN_LAVA_PYTHON={tmp_path / 'envs' / 'lava' / 'bin' / 'python'}" in capsys.readouterr().out
    (hw / "lava" / "make_env.sh").write_text("exit 3\n")
    with pytest.raises(SystemExit, match="failed \\(exit status 3\\)"):
        main(["lava-env"])


def test_bench_runs_from_the_shipped_copy(tmp_path, monkeypatch):
    import spikeattn._paths as paths

    shipped = tmp_path / "_benchmarks"
    shipped.mkdir()
    (shipped / "bench_lif.py").write_text("import sys, pathlib; pathlib.Path(sys.argv[-1]).write_text(' '.join(sys.argv[1:]))\n")
    monkeypatch.setattr(paths, "benchmarks_dir", lambda: shipped)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "lif", "--quick"])
    assert exit_.value.code == 0
    assert (tmp_path / "bench_lif.json").read_text() == "--quick --out bench_lif.json"  # JSON here, not in site-packages
