"""The multi-step LIF of each library, wrapped to one shape: ``forward(x_seq [T, ...]) -> spikes [T, ...]``.

Neuron everywhere (where the library can express it): tau=2, v_th=1, v_reset=0 (hard reset),
decay_input=True, ATan(alpha=2) surrogate, membrane starting at 0.
snntorch is run as its users write it: ``Leaky(beta=0.5, spike_grad=atan())`` looped over T. That is a
different neuron (no input decay, subtract reset, reset always detached), so it is timed but not
compared spike for spike.

Third-party libraries are imported only when their runner is built; ``missing(package)`` says
beforehand whether one is installed. Also here: inputs, the measured fwd+bwd and the agreement check,
shared by the CPU and CUDA modes.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Callable

import torch

import _common

TAU, V_TH, V_RESET, ALPHA = 2.0, 1.0, 0.0, 2.0
# max |g - g_ref| / max |g_ref| by dtype: 1e-5 is the parity tests' tolerance against spikingjelly;
# half-precision gradients are rounded once to their dtype (one ulp of the largest element).
GRAD_RTOL = {torch.float32: 1e-5, torch.float16: 2**-10, torch.bfloat16: 2**-7}


@dataclass
class Runner:
    """One library's LIF: ``forward`` maps x_seq to spikes; ``reset`` (if any) clears module state."""

    library: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    reset: Callable[[], object] | None = None
    info: dict = field(default_factory=dict)


def missing(package: str) -> str | None:
    """A note when ``package`` is not installed, else None (import errors of an installed package still raise)."""
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed: its rows are skipped"
    return None


def spikeattn_lif(backend: str, detach_reset: bool) -> Runner:
    """spikeattn's functional multi-step LIF on ``backend`` ('torch', 'cpu' or 'cupy')."""
    import spikeattn as sa

    surrogate = sa.surrogate.ATan(ALPHA)

    def forward(x):
        spikes, _ = sa.neuron.lif_multistep(x, None, tau=TAU, v_th=V_TH, v_reset=V_RESET, decay_input=True,
                                            detach_reset=detach_reset, surrogate=surrogate, backend=backend)
        return spikes

    return Runner(f"spikeattn {backend}", forward)


def spikingjelly_node(detach_reset: bool) -> Runner:
    """spikingjelly 2.0 ``LIFNode(step_mode='m')``, the module users build (its default path on the device)."""
    from spikingjelly.activation_based import neuron, surrogate

    node = neuron.LIFNode(tau=TAU, decay_input=True, v_threshold=V_TH, v_reset=V_RESET,
                          surrogate_function=surrogate.ATan(alpha=ALPHA), detach_reset=detach_reset, step_mode="m")
    return Runner("spikingjelly", node, node.reset)


def spikingjelly_fused(detach_reset: bool, device: torch.device) -> Runner:
    """spikingjelly 2.0 functional ``lif_multi_step`` with an fp32 initial membrane.

    Used on the GPU: ``LIFNode`` keeps its membrane in the input dtype, and a non-fp32 membrane sends
    fp16/bf16 input to spikingjelly's torch reference loop; an fp32 membrane gets its fused kernels
    (native CUDA if built, else triton if importable, else torch: ``info['implementation']`` says which).
    """
    from spikingjelly.activation_based import surrogate
    from spikingjelly.activation_based.functional import neuron as F

    sg = surrogate.ATan(alpha=ALPHA)
    info = {"implementation": "unknown"}
    if device.type == "cuda":
        info = {k: v for k, v in F.neuron_implementation("lif", device).items()}
    info["requested"] = os.environ.get("SJ_LIF_CUDA_IMPLEMENTATION", "auto")

    def forward(x):
        v0 = torch.full(x.shape[1:], V_RESET, dtype=torch.float32, device=x.device)
        spikes, _, _ = F.lif_multi_step(x, v0, TAU, True, V_TH, V_RESET, sg, detach_reset)
        return spikes

    return Runner(f"spikingjelly {info['implementation']}" if device.type == "cuda" else "spikingjelly", forward,
                  info=info)


def snntorch_leaky(device: torch.device) -> Runner:
    """snntorch 1.0 ``Leaky(beta=0.5, spike_grad=atan())`` over T in a Python loop (its users' code)."""
    import snntorch as snn
    from snntorch import surrogate

    leaky = snn.Leaky(beta=1.0 - 1.0 / TAU, spike_grad=surrogate.atan(alpha=ALPHA)).to(device)

    def forward(x):
        mem = leaky.reset_mem()
        spikes = []
        for x_t in x:
            spk, mem = leaky(x_t, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return Runner("snntorch", forward, info={"neuron": "Leaky(beta=0.5, reset_mechanism='subtract'), reset detached"})


def fwd_bwd(runner: Runner, x: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step of the neuron alone: spikes, then d(sum(spikes * grad_out))/dx."""
    spikes = runner.forward(x)
    (grad_x,) = torch.autograd.grad(spikes, x, grad_out)
    return spikes, grad_x


def make_inputs(shape, device, dtype, seed: int):
    """Input current (mean 1.5, so the neurons both fire and stay silent) and a fixed grad_output."""
    g = torch.Generator(device=device).manual_seed(seed)  # drawn on the device: 2^24 x 32 is slow on a CPU
    x = (torch.randn(shape, generator=g, device=device) + 1.5).to(dtype)
    w = torch.randn(shape, generator=g, device=device).to(dtype)
    return x.requires_grad_(True), w


def measure(runner: Runner, x, w, timer, warmup: int, repeats: int) -> tuple[dict, tuple]:
    """Saved bytes (one counted fwd+bwd, whose outputs are returned for the checks), then timed fwd+bwd."""
    if runner.reset:
        runner.reset()
    spikes, nbytes = _common.saved_bytes(lambda: runner.forward(x))
    (grad_x,) = torch.autograd.grad(spikes, x, w)
    times = timer(lambda: fwd_bwd(runner, x, w), warmup, repeats, setup=runner.reset)
    row = {"library": runner.library, **_common.summarize(times), "times_ms": [round(t, 4) for t in times],
           "saved_bytes_per_neuron_step": nbytes / x.numel(), "firing_rate": spikes.float().mean().item(), **runner.info}
    return row, (spikes.detach(), grad_x)


def agreement(name: str, ref: tuple, other: tuple) -> dict:
    """Spikes bit-equal and input gradients within ``GRAD_RTOL[dtype]`` of the reference's scale."""
    (s_ref, g_ref), (s, g) = ref, other
    rtol = GRAD_RTOL[g_ref.dtype]
    mismatched = int((s_ref != s).sum())
    scale = g_ref.abs().max().item() or 1.0
    grad_rel = (g.float() - g_ref.float()).abs().max().item() / scale  # fp32: no copy for fp32 grads
    finite = bool(torch.isfinite(g).all())
    return {"check": name, "spikes_equal": mismatched == 0, "spikes_mismatched": mismatched,
            "grad_max_rel_diff": grad_rel, "grad_finite": finite, "grad_rtol": rtol,
            "ok": mismatched == 0 and grad_rel <= rtol and finite}


def add_ratios(rows: list[dict], group) -> None:
    """Speedup and saved-bytes ratio against the spikingjelly row with the same ``group(row)``."""
    for r in rows:
        base = next((b for b in rows if b["library"].startswith("spikingjelly") and "median_ms" in b
                     and group(b) == group(r)), None)
        if base is None or "median_ms" not in r:
            continue
        r["speedup_vs_spikingjelly"] = base["median_ms"] / r["median_ms"]
        if base.get("saved_bytes_per_neuron_step"):
            r["saved_ratio_vs_spikingjelly"] = r["saved_bytes_per_neuron_step"] / base["saved_bytes_per_neuron_step"]
