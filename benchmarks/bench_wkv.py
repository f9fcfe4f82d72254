"""WKV forward + backward: the torch reference loop vs the fused CPU kernel (and CUDA when present).

    python benchmarks/bench_wkv.py                 # writes benchmarks/results/wkv_cpu.json
    python benchmarks/bench_wkv.py --quick         # tiny shapes, a smoke run

Each row times ``y = wkv(w, u, k, v); (y * g).sum().backward()`` on [B, T, C] fp32 input and checks the
fast path against the reference (outputs and the four gradients). On the CPU a ``cpu-scalar`` row runs
the same kernels built without libmvec (scalar exp/log: what a machine without glibc's libmvec gets, and
the kernel before vector math), called directly (forward + backward, no autograd).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import _common
from spikeattn.ops.wkv import cpu as wkv_cpu
from spikeattn.ops.wkv import wkv

PACKAGES = ("torch", "numpy")
SHAPES = [(8, 128, 256), (4, 512, 512), (16, 1024, 128)]
QUICK_SHAPES = [(2, 16, 32)]


def fwd_bwd(backend, inputs, g):
    if backend == "cpu-scalar":
        y, lse = wkv_cpu.fused_wkv_forward(*inputs, vector_math=False)
        return y, list(wkv_cpu.fused_wkv_backward(*inputs, y, lse, g, vector_math=False))
    leaves = [x.detach().requires_grad_(True) for x in inputs]
    y = wkv(*leaves, backend=backend)
    (y * g).sum().backward()
    return y.detach(), [x.grad for x in leaves]


def make_inputs(B, T, C, device):
    gen = torch.Generator().manual_seed(0)
    w = torch.exp(torch.randn(C, generator=gen) - 1)
    u = torch.randn(C, generator=gen)
    k, v, g = (torch.randn(B, T, C, generator=gen) for _ in range(3))
    return [x.to(device) for x in (w, u, k, v)], g.to(device)


def max_rel_err(a: torch.Tensor, e: torch.Tensor) -> float:
    return ((a.double() - e.double()).abs().max() / e.double().abs().max().clamp(min=1e-30)).item()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/wkv_<device>.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    fast = "cpu" if args.device == "cpu" else "cupy"
    timer = _common.time_cpu if args.device == "cpu" else _common.time_cuda
    rows, checks = [], []
    for B, T, C in QUICK_SHAPES if args.quick else SHAPES:
        inputs, g = make_inputs(B, T, C, args.device)
        y_ref, g_ref = fwd_bwd("torch", inputs, g)
        backends = ("torch", fast, "cpu-scalar") if fast == "cpu" else ("torch", fast)
        for backend in backends[1:]:
            y, grads = fwd_bwd(backend, inputs, g)
            errs = [max_rel_err(y, y_ref)] + [max_rel_err(a, e) for a, e in zip(grads, g_ref)]
            checks.append({"backend": backend, "shape": [B, T, C], "max_rel_err": max(errs), "ok": max(errs) < 1e-4})
        times = {backend: [] for backend in backends}
        for i in range(args.warmup + args.repeats):  # interleaved: each round runs every backend once
            for backend in backends:
                ms = timer(lambda: fwd_bwd(backend, inputs, g), 0, 1)[0]
                if i >= args.warmup:
                    times[backend].append(ms)
        for backend, t in times.items():
            rows.append({"backend": backend, "shape": f"{B}x{T}x{C}", **_common.summarize(t),
                         "ns_per_element": 1e6 * min(t) / (B * T * C)})
    for r in rows:
        ref = next(x for x in rows if x["shape"] == r["shape"] and x["backend"] == "torch")
        r["speedup_vs_torch"] = ref["min_ms"] / r["min_ms"]
    result = {"benchmark": "wkv_fwd_bwd", "device": args.device, "threads": args.threads, **_common.environment(PACKAGES),
              "dtype": "float32", "vector_math": wkv_cpu.vector_math() if args.device == "cpu" else None,
              "timing": "backends interleaved round by round in one process",
              "rows": rows, "checks": checks, "all_checks_ok": all(c["ok"] for c in checks)}
    print(_common.table(rows, [("backend", "backend", "s"), ("B x T x C", "shape", "s"), ("median ms", "median_ms", ".2f"),
                               ("min ms", "min_ms", ".2f"), ("ns/elem", "ns_per_element", ".1f"),
                               ("speedup", "speedup_vs_torch", ".1f")]))
    default_out = Path(__file__).resolve().parent / "results" / f"wkv_{args.device}.json"
    print("written", _common.write_json(args.out or default_out, result))
    return 0 if result["all_checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
