"""A host-kernel build that fails (no compiler, unwritable cache): backend='auto' falls back to torch with ONE warning
naming the cause and the fix; backend='cpu' raises. Run in subprocesses: the build result is cached per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_SCRIPT = """
import json, warnings, torch
import spikeattn as sa
from spikeattn.ops.lif import lif_multi_step, resolve_backend
from spikeattn.functional.neuron import LIFParameters

x = torch.randn(4, 2, 8, generator=torch.Generator().manual_seed(0))
p = LIFParameters(surrogate=sa.surrogate.ATan(2.0))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    spikes, v = lif_multi_step(x, None, p, backend="auto")
    model = sa.models.spikformer("spikformer-mini-fmnist", T=1).eval()  # LIF, SSA and spike-linear ops in one forward
    with torch.no_grad():
        model(torch.rand(2, 1, 28, 28))
ref, ref_v = lif_multi_step(x, None, p, backend="torch")
try:
    lif_multi_step(x, None, p, backend="cpu")
    explicit = "no error"
except RuntimeError as e:
    explicit = str(e)
print(json.dumps({"warnings": [str(w.message) for w in caught], "chosen": resolve_backend("auto", x, p.surrogate),
                  "equal": bool(torch.equal(spikes, ref) and torch.equal(v, ref_v)), "explicit": explicit}))
"""


def _run(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", ["no compiler", "compiler fails", "unwritable cache"])
def test_auto_falls_back_with_one_warning(tmp_path, case):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"SPIKEATTN_CACHE": str(tmp_path / "empty-cache")}  # empty: nothing built before
    if case == "no compiler":
        env["CXX"] = "no-such-compiler-xyz"
        cause = "no C++ compiler: 'no-such-compiler-xyz' is not on PATH"
    elif case == "compiler fails":
        env["CXX"] = "false"
        cause = "with /usr/bin/false failed (exit 1)" if os.path.exists("/usr/bin/false") else "failed (exit 1)"
    else:
        env["SPIKEATTN_CACHE"] = str(blocker / "cache")  # below a regular file: mkdir fails even as root
        cause = f"cannot write the kernel cache {blocker / 'cache'}"
    result = _run(env)
    assert result["chosen"] == "torch" and result["equal"]
    assert len(result["warnings"]) == 1, result["warnings"]  # one, for the LIF, SSA and linear kernels together
    warning = result["warnings"][0]
    assert cause in warning and "falls back to the torch reference" in warning and "install a C++ compiler" in warning
    assert "backend='cpu' needs its C++ kernels built here" in result["explicit"] and cause in result["explicit"]


_NO_LIBMVEC = """
import json, torch
from spikeattn.ops import _native
# A machine without libmvec: its link flag fails, as -lmvec does there.
_native.VECTOR_MATH_FLAGS = ("-DSA_LIBMVEC", "-fopenmp-simd", "-lno-such-library-xyz")
_native.OPTIONAL_FLAGS = (_native.VECTOR_MATH_FLAGS, _native.OPENMP_FLAGS)
from spikeattn.ops.wkv import cpu, wkv
from spikeattn.ops.wkv.reference import naive_wkv
g = torch.Generator().manual_seed(0)
w, u = torch.rand(9, generator=g) + 0.1, torch.randn(9, generator=g)
k, v = torch.randn(2, 20, 9, generator=g), torch.randn(2, 20, 9, generator=g)
y = wkv(w, u, k, v, backend="cpu")
print(json.dumps({"available": cpu.is_available(), "vector_math": cpu.vector_math(),
                  "err": float((y - naive_wkv(w, u, k, v)).abs().max())}))
"""


def test_wkv_builds_without_libmvec(tmp_path):
    """Where -lmvec does not link, the WKV kernel still builds (scalar exp/log) and is right."""
    out = subprocess.run([sys.executable, "-c", _NO_LIBMVEC], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SPIKEATTN_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["available"] and not result["vector_math"]
    assert result["err"] < 1e-5
