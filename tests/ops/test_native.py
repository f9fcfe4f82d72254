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


def test_has_avx512_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(_native, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f", "avx512bw"}))
    assert _native.has_avx512() is True
    monkeypatch.setattr(_native, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512_vnni"}))  # no avx512f
    assert _native.has_avx512() is False
