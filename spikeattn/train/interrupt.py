"""Stopping a run cleanly: SIGINT/SIGTERM set a flag, the trainer checkpoints and raises ``Interrupted``.

    with stop_on_signals() as stop:
        train(model, data, config, stop=stop)     # Ctrl-C or `kill`: checkpoint, then Interrupted

The handler only sets a flag (the step in progress finishes, so the checkpoint is a consistent
state), and puts the previous handler back: a second Ctrl-C while saving behaves as usual.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

__all__ = ["StopRequest", "Interrupted", "stop_on_signals"]


class StopRequest(threading.Event):
    """An event that also remembers which signal set it (``None`` when set by a plain ``set()``)."""

    signum: int | None = None


class Interrupted(Exception):
    """Training stopped on request after writing ``checkpoint`` at ``step``; resume from it."""

    def __init__(self, step: int, checkpoint: Path, signum: int | None):
        name = signal.Signals(signum).name if signum else "a stop request"
        super().__init__(f"stopped by {name} at step {step}; checkpoint {checkpoint}")
        self.step, self.checkpoint, self.signum = step, checkpoint, signum


@contextlib.contextmanager
def stop_on_signals(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
    """Yield a ``StopRequest`` that the first of ``signums`` sets; the old handlers are back on exit."""
    stop = StopRequest()
    previous = {s: signal.getsignal(s) for s in signums}

    def handler(signum, _frame):
        stop.signum = signum
        stop.set()
        signal.signal(signum, previous[signum])  # a second signal acts as it did before

    for s in signums:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
