"""``bench_lif.py --device cuda``: LIF fwd+bwd on one GPU against its memory roofline.

Grid: N = 2^20 and 2^24 neurons, T = 8 and 32, fp32 / fp16 / bf16, input ``[T, N]``. Libraries:
spikeattn ``backend='cupy'``, spikingjelly 2.0 (functional ``lif_multi_step`` with an fp32 membrane,
on the implementation it selects: native CUDA if built, else triton if importable, else torch;
``--sj-impl`` forces one), snntorch ``Leaky`` looped over T. Timed with ``torch.cuda.Event``.

Achieved bandwidth counts the least traffic the work needs per neuron-step, whatever a library
really moves: forward reads x and writes spikes (x's dtype) and the charged membrane h (fp32);
backward reads grad_spikes and h and writes grad_x. That is ``4 * itemsize + 8`` bytes (24 in fp32,
16 in fp16/bf16); the O(N) initial and final membranes are left out.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import traceback

import torch

import _common
import _lif_libs as libs

SIZES = tuple((T, N) for N in (2**20, 2**24) for T in (8, 32))
QUICK_SIZES = ((4, 1003),)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Peak HBM bandwidth (bytes/s, vendor datasheets) by a substring of torch.cuda.get_device_name();
# the first match wins, so specific names come before general ones.
HBM_PEAK = (
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100 80GB HBM3", 3.35e12),  # the SXM5 part's device name
    ("H100 SXM", 3.35e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100-SXM4-40GB", 1.555e12),
    ("A100-PCIE-40GB", 1.555e12),
    ("L40S", 0.864e12),
    ("RTX 4090", 1.008e12),
)

COLUMNS = [
    ("library", "library", ""), ("dtype", "dtype", ""), ("T", "T", "d"), ("N", "N", "d"),
    ("median ms", "median_ms", ".3f"), ("min ms", "min_ms", ".3f"), ("speedup vs sj", "speedup_vs_spikingjelly", ".2f"),
    ("GB/s", "achieved_GBps", ".0f"), ("HBM peak", "hbm_peak_fraction", ".1%"),
    ("saved B/neuron-step", "saved_bytes_per_neuron_step", ".2f"), ("error", "error", ""),
]


def hbm_peak(device_name: str) -> float | None:
    """Peak HBM bytes/s of a GPU by its name, None when the table does not know it."""
    for key, peak in HBM_PEAK:
        if key.lower() in device_name.lower():
            return peak
    return None


def device_slug() -> str:
    """File-name form of the current GPU's name: 'NVIDIA H100 80GB HBM3' -> 'h100_80gb_hbm3'."""
    name = re.sub(r"[^a-z0-9]+", "_", torch.cuda.get_device_name().lower()).strip("_")
    return name.removeprefix("nvidia_") or "gpu"


def min_bytes_per_neuron_step(dtype: torch.dtype) -> int:
    """x + spikes + grad_spikes + grad_x in ``dtype``, h written once and read once in fp32 (module doc)."""
    return 4 * torch.empty((), dtype=dtype).element_size() + 2 * 4


def _runners(device: torch.device, notes: list[str]) -> list[libs.Runner]:
    from spikeattn.ops.lif import cupy as sa_cupy

    runners = []
    if sa_cupy.is_available():
        runners.append(libs.spikeattn_lif("cupy", detach_reset=False))
    else:
        notes.append("spikeattn cupy: CuPy is not importable or sees no GPU (pip install 'spikeattn[cuda]'): rows skipped")
    if libs.missing("spikingjelly") is None:
        runners.append(libs.spikingjelly_fused(False, device))
    if libs.missing("snntorch") is None:
        runners.append(libs.snntorch_leaky(device))
    notes.extend(n for n in (libs.missing("spikingjelly"), libs.missing("snntorch")) if n)
    return runners


def _bandwidth(row: dict, dtype: torch.dtype, T: int, N: int, peak: float | None) -> None:
    nbytes = min_bytes_per_neuron_step(dtype)
    row["min_bytes_per_neuron_step"] = nbytes
    row["achieved_GBps"] = nbytes * T * N / (row["median_ms"] * 1e-3) / 1e9
    row["hbm_peak_fraction"] = row["achieved_GBps"] * 1e9 / peak if peak else None


def _run_config(runners, T, N, dtype, device, args, peak, rows, checks) -> None:
    """Every library on one (T, N, dtype); checks against spikeattn's torch reference on the same GPU."""
    x, w = libs.make_inputs((T, N), device, dtype, seed=T * 7 + N)
    ref = libs.fwd_bwd(libs.spikeattn_lif("torch", detach_reset=False), x, w)
    ref = (ref[0].detach(), ref[1])
    tag = f"{str(dtype).removeprefix('torch.')} T={T} N={N}"
    for runner in runners:
        out = None
        try:
            row, out = libs.measure(runner, x, w, _common.time_cuda, args.warmup, args.repeats)
            _bandwidth(row, dtype, T, N, peak)
        except Exception as error:  # noqa: BLE001  one library's failure must not lose a whole GPU run: recorded, printed
            traceback.print_exc()
            row = {"library": runner.library, "error": f"{type(error).__name__}: {error}"}
        row.update(T=T, N=N, dtype=str(dtype).removeprefix("torch."))
        rows.append(row)
        if out is None:
            checks.append({"check": f"{runner.library} ran, {tag}", "ok": False})
        elif runner.library == "snntorch":  # a different neuron: only sanity
            checks.append({"check": f"snntorch {tag}: spikes binary, grad finite",
                           "ok": bool(((out[0] == 0) | (out[0] == 1)).all() and torch.isfinite(out[1]).all())})
        else:
            checks.append(libs.agreement(f"{runner.library} vs spikeattn torch, {tag}", ref, out))
        print(f"  {row['library']:<20} {tag:<24} {row.get('median_ms', float('nan')):.3f} ms", file=sys.stderr)
        del out
        gc.collect()
        torch.cuda.empty_cache()


def run(args) -> dict:
    """The CUDA grid; returns the mode-specific part of the result JSON."""
    notes = []
    if args.sj_impl != "auto":
        if "spikingjelly._ops.lif" in sys.modules:  # the choice is read once, when that module loads
            notes.append(f"--sj-impl {args.sj_impl} ignored: spikingjelly was imported before the flag was applied")
        os.environ["SJ_LIF_CUDA_IMPLEMENTATION"] = args.sj_impl
    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)")
    device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device)
    peak = hbm_peak(name)
    if peak is None:
        notes.append(f"unknown device {name!r}: not in the HBM peak table, so no fraction of peak is reported")
    runners = _runners(device, notes)
    rows, checks = [], []
    for T, N in QUICK_SIZES if args.quick else SIZES:
        for dtype in DTYPES:
            _run_config(runners, T, N, dtype, device, args, peak, rows, checks)
    libs.add_ratios(rows, lambda r: (r["T"], r["N"], r["dtype"]))
    sj_info = next((r.info for r in runners if r.library.startswith("spikingjelly")), None)
    return {"rows": rows, "checks": checks, "notes": notes, "gpu": name, "gpu_capability": list(torch.cuda.get_device_capability(device)),
            "hbm_peak_bytes_per_s": peak, "unknown_device": peak is None, "cuda_runtime": torch.version.cuda,
            "spikingjelly_implementation": sj_info, "sizes": [{"T": T, "N": N} for T, N in (QUICK_SIZES if args.quick else SIZES)],
            "dtypes": [str(d).removeprefix("torch.") for d in DTYPES],
            "bytes_model": "per neuron-step: fwd reads x, writes spikes (x dtype) + h (fp32); bwd reads grad_spikes + h, writes grad_x"}
