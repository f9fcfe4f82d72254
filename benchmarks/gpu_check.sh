#!/usr/bin/env bash
# Every GPU test and GPU benchmark in one command, one JSON: `make gpu-check` or
#   bash benchmarks/gpu_check.sh [OUT_JSON]      (default benchmarks/results/gpu_check_<gpu>.json)
# Tests: LIF and WKV CuPy kernels vs the reference, AMP bf16/fp16 training steps of Spikformer and SpikeGPT,
# 2-process NCCL DDP (two GPUs, else skipped). Benchmarks: bench_lif/bench_wkv --device cuda.
# Needs nothing prepared: builds .venv-gpu (torch from the registry, which must be a CUDA build, plus
# spikeattn[dev,cuda]); each step has a time limit so the whole check stays under 8 minutes.
# Without a GPU it stops at once (exit 2) and says so.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q "^GPU "; then
    echo "gpu-check: no NVIDIA GPU on this machine (nvidia-smi missing or lists none); nothing was run." >&2
    echo "gpu-check: run it where a CUDA GPU is visible; the CPU suite is \`make test\`." >&2
    exit 2
fi

GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '_' | tr -s '_')"
OUT="${1:-benchmarks/results/gpu_check_${GPU}.json}"
VENV="${GPU_CHECK_VENV:-.venv-gpu}"
TORCH_SPEC="${TORCH_SPEC:-torch}"   # the registry's default Linux torch is a CUDA build; override if not
PY="$VENV/bin/python"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

step() {  # step NAME SECONDS CMD...: run with a time limit, keep its exit status and log tail
    local name="$1" limit="$2"; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    echo "$name $rc $((SECONDS - start))" >>"$WORK/steps.txt"
    echo "gpu-check: $name -> exit $rc in $((SECONDS - start)) s"
}

if [ ! -x "$PY" ]; then
    step setup_venv 60 python3 -m venv "$VENV"
fi
step install 240 bash -c "'$PY' -m pip install -q '$TORCH_SPEC' && '$PY' -m pip install -q -e '.[dev,cuda]'"
if ! "$PY" -c 'import torch, cupy, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >"$WORK/probe.log" 2>&1; then
    echo "gpu-check: $VENV cannot use the GPU (torch.cuda.is_available() false, or no cupy):" >&2
    cat "$WORK/probe.log" "$WORK/install.log" 2>/dev/null | tail -20 >&2
    echo "gpu-check: install a CUDA torch (TORCH_SPEC=...) and cupy-cuda12x matching the driver, then rerun." >&2
    exit 3
fi

step tests 240 "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml="$WORK/tests.xml" \
    tests/ops/test_lif_cupy.py tests/ops/test_wkv_cuda.py tests/train/test_amp_models.py tests/train/test_ddp.py
step bench_lif 90 "$PY" benchmarks/bench_lif.py --device cuda --quick --out "$WORK/bench_lif.json"
step bench_wkv 60 "$PY" benchmarks/bench_wkv.py --device cuda --quick --out "$WORK/bench_wkv.json"

"$PY" - "$WORK" "$OUT" <<'PYEOF'
import json, sys, time, xml.etree.ElementTree as ET
from pathlib import Path
import torch

work, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = {}
for line in (work / "steps.txt").read_text().splitlines():
    name, rc, secs = line.split()
    steps[name] = {"exit": int(rc), "seconds": int(secs), "log_tail": (work / f"{name}.log").read_text()[-2000:]}
tests = []
if (work / "tests.xml").is_file():
    for case in ET.parse(work / "tests.xml").iter("testcase"):
        status = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        detail = next((c.get("message", "") for c in case if c.tag in ("failure", "error", "skipped")), "")
        tests.append({"test": f"{case.get('classname')}::{case.get('name')}", "status": status,
                      "seconds": float(case.get("time", 0)), "detail": detail[:300]})
benchmarks = {n: json.loads((work / f"{n}.json").read_text()) for n in ("bench_lif", "bench_wkv")
              if (work / f"{n}.json").is_file()}
record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gpus": [torch.cuda.get_device_name(i)
          for i in range(torch.cuda.device_count())], "torch": torch.__version__, "cuda": torch.version.cuda,
          "ok": all(s["exit"] == 0 for s in steps.values()) and not any(t["status"] in ("failure", "error") for t in tests),
          "steps": steps, "tests": tests, "benchmarks": benchmarks}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(record, indent=1) + "\n")
print(f"gpu-check: {'OK' if record['ok'] else 'FAILED'}; "
      f"{sum(t['status'] == 'passed' for t in tests)} passed, {sum(t['status'] == 'skipped' for t in tests)} skipped, "
      f"{sum(t['status'] in ('failure', 'error') for t in tests)} failed; wrote {out}")
sys.exit(0 if record["ok"] else 1)
PYEOF
