"""The host-kernel builder's compiler lookup: cached (ops ask per call), yet it follows $CXX and $PATH."""

from __future__ import annotations

import shutil

from spikeattn.ops import _native


def test_compiler_follows_cxx_and_path(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    assert _native.compiler() is None
    monkeypatch.setenv("CXX", "g++")
    assert _native.compiler() == shutil.which("g++")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _native.compiler() is None


def test_lookup_is_cached(monkeypatch):
    _native.compiler()
    calls = []
    monkeypatch.setattr(_native.shutil, "which", lambda *a, **k: calls.append(a))
    for _ in range(5):
        _native.compiler()
    assert calls == []  # same $CXX and $PATH: no new search
