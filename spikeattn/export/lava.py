"""``to_lava`` (export) and ``run_lava`` (run the artifact in ``.venv-lava`` through a subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikeattn._paths import hardware_dir
from spikeattn.export.artifact import LavaArtifact, open_artifact, write
from spikeattn.export.graph import build_graph, fold_batchnorm
from spikeattn.export.spikformer import fold_spikformer, spikformer_graph
from spikeattn.models.spikformer import Spikformer


# Models whose forward branches (residuals, attention) get their own graph builder; any other
# model is walked as a feed-forward chain.
MODEL_BUILDERS = {Spikformer: lambda m, x: spikformer_graph(fold_spikformer(m), x)}


class LavaError(RuntimeError):
    """The Lava runtime is missing, timed out, or failed (the message carries its stderr)."""


def to_lava(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor) -> LavaArtifact:
    """Export a feed-forward SNN or a Spikformer to a torch-free Lava artifact folder.

    Args:
        model: the pattern of ``spikeattn.export.PerStep`` (Sequential of Linear, PerStep(Conv2d,
            BatchNorm, pooling, Flatten), LIF/IF/PLIF in step mode 'm'), or a ``Spikformer`` (SSA or
            SDSA; its output is per-step logits, whose mean over T is torch's logits); BatchNorm in eval mode.
        path: folder to write ``graph.json`` and ``weights.npz`` into.
        example_input: ``[T, B, ...]`` (a Spikformer also takes ``[B, C, H, W]``); fixes the input shape.

    Returns:
        LavaArtifact. Raises NotExportable listing every unsupported module.

    Example:
        >>> art = to_lava(net.eval(), "out/net.lava", x[:, :1])
    """
    return write(path, *export_graph(model, example_input))


def export_graph(model: nn.Module, example_input: torch.Tensor) -> tuple[dict, dict]:
    """``(graph, arrays)`` that ``to_lava`` writes (BatchNorm folded), without writing them."""
    build = MODEL_BUILDERS.get(type(model))
    return build(model, example_input) if build else build_graph(fold_batchnorm(model), example_input)


def lava_env_dir() -> Path:
    """Where ``spikeattn lava-env`` builds the Lava env by default: a per-user cache folder."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "spikeattn" / "venv-lava"


def lava_python() -> Path:
    """The Python of the Lava env, the first that exists of: ``$SPIKEATTN_LAVA_PYTHON``, the source tree's
    ``.venv-lava`` (``make lava-env``), the user cache env (``spikeattn lava-env``)."""
    env = os.environ.get("SPIKEATTN_LAVA_PYTHON")
    if env:
        return Path(env)
    candidates = [hardware_dir().parent / ".venv-lava" / "bin" / "python", lava_env_dir() / "bin" / "python"]
    return next((c for c in candidates if c.is_file()), candidates[-1])


def _missing_env_message(py: Path) -> str:
    source = "set by $SPIKEATTN_LAVA_PYTHON" if os.environ.get("SPIKEATTN_LAVA_PYTHON") else "looked for"
    return (f"the Lava environment is missing ({source}: {py}); build it with `spikeattn lava-env` (into "
            f"{lava_env_dir()}; `make lava-env` in a source checkout), or set SPIKEATTN_LAVA_PYTHON to the python "
            "of a Python 3.10 env with lava-nc 0.10.0")


# Fixed-point plans, the default first, with their default synapses per connection: the runtime's
# quantize.PLAN_SYNAPSES (hardware/lava/quantize.py; tests/export/test_lava_library.py checks they agree).
PLANS = {"library": 1, "per_channel": 2}
PER_CHANNEL_OFF_LIBRARY = (
    "plan='per_channel' cannot run on Lava's library processes: Lava's LIF has one vth per process (per-channel "
    "weight scales folded into per-channel thresholds have no library form) and Lava's Conv model ignores "
    "weight_exp (the two-synapse high/low byte split has none either); use plan='library' (the default)")


def run_lava(artifact: LavaArtifact | str | os.PathLike, input_spikes: np.ndarray, fixed_point: bool = False,
             timeout: float = 120, return_layers: bool = False, weight_synapses: int | None = None,
             library: bool = False, plan: str = "library"):
    """Run an artifact in Lava (Loihi2SimCfg) for ``T`` steps on every sample of the batch.

    Args:
        artifact: a LavaArtifact or its folder.
        input_spikes: ``[T, B, *input_shape]`` numpy array (cast to float32).
        fixed_point: run the Loihi-style integer models (see hardware/lava/quantize.py).
        timeout: seconds before the subprocess is killed.
        return_layers: also return ``{node name: [T, B, ...] spikes/values}`` for every node.
        weight_synapses: fixed point only: 8-bit synapses per connection (1: sign + 8 bits; 2: sign +
            16 bits at twice the synapse memory) of every weight layer that is not a library pair (under
            plan ``"library"`` a pair always has one); ``None``: the plan's, 1 for ``"library"``, 2 for
            ``"per_channel"``.
        library: fixed point only: every Linear/Conv + LIF pair Lava's process library can express
            runs as Lava's own ``Dense``/``Conv`` + ``LIF`` processes (their bit-accurate fixed-point
            models); the rest stays custom (``layers.library`` lists the pairs, ``loihi_report(...).off_library``
            the rest, with the reason). One sample per Lava run. The spikes equal ``library=False``'s.
        plan: fixed point only: ``"library"`` (the default: on every library pair the numbers Lava's
            processes hold, one 8-bit synapse and one weight step per layer folded into one threshold,
            so ``library=True`` and ``False`` give the same spikes) or ``"per_channel"`` (per-channel
            weight scales folded into per-channel thresholds and, by default, two 8-bit synapses per
            connection: more accurate, but it runs only on this project's custom processes; Lava's
            processes cannot hold it, so ``library=True`` refuses it).

    Returns:
        ``output [T, B, ...]`` float32, or ``(output, layers)`` with ``return_layers`` (a
        ``LavaLayers`` dict; the synapse nodes of library pairs run inside Lava's processes and
        are not recorded).
    """
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {tuple(PLANS)} ('library' is the default), got {plan!r}")
    if weight_synapses not in (None, 1, 2):
        raise ValueError(f"weight_synapses must be 1 or 2, got {weight_synapses!r} (None: the plan's)")
    if library and not fixed_point:
        raise ValueError("library=True needs fixed_point=True (Lava's bit-accurate models)")
    if plan != "library" and not fixed_point:
        raise ValueError(f"plan={plan!r} is a fixed-point plan: it needs fixed_point=True")
    if library and plan != "library":
        raise ValueError(PER_CHANNEL_OFF_LIBRARY)
    art = artifact if isinstance(artifact, LavaArtifact) else open_artifact(artifact)
    x = np.asarray(input_spikes)
    if x.ndim != 2 + len(art.input_shape) or tuple(x.shape[2:]) != art.input_shape:
        raise ValueError(f"input_spikes must be [T, B, {', '.join(map(str, art.input_shape))}] for this artifact, "
                         f"got shape {tuple(x.shape)}")
    if 0 in x.shape[:2]:
        raise ValueError(f"input_spikes needs at least one time step and one sample (T, B >= 1), got shape {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"input_spikes must be a real numeric array, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("input_spikes holds NaN or inf")
    py = lava_python()
    if not py.is_file():
        raise LavaError(_missing_env_message(py))
    runner = hardware_dir() / "lava" / "run.py"
    with tempfile.TemporaryDirectory(prefix="spikeattn-lava-") as tmp:
        inp, out = os.path.join(tmp, "input.npy"), os.path.join(tmp, "out.npz")
        np.save(inp, x.astype(np.float32))
        # The runner starts in the temporary folder: a relative artifact path must be resolved here.
        cmd = [str(py), str(runner), str(Path(art.path).resolve()), "--input", inp, "--out", out]
        cmd += ["--fixed-point"] * fixed_point + ["--record-all"] * return_layers
        cmd += ["--plan", plan] + ["--weight-synapses", str(weight_synapses)] * (weight_synapses is not None)
        cmd += ["--library"] * library
        returncode, stderr = _run_group(cmd, tmp, timeout)
        if returncode is None:
            raise LavaError(f"the Lava runtime did not finish within timeout={timeout} s (killed):\n{stderr}")
        if returncode != 0:
            what = "rejected the artifact or input" if returncode == 2 else f"failed (exit status {returncode})"
            raise LavaError(f"the Lava runtime {what}:\n{stderr}")
        with np.load(out, allow_pickle=False) as z:
            output = z["output"]
            layers = LavaLayers({k[len("layer/"):]: z[k] for k in z.files if k.startswith("layer/")})
            if "library" in z.files:
                layers.library = dict(line.split(": ", 1) for line in z["library"].tolist())
    return (output, layers) if return_layers else output


class LavaLayers(dict):
    """``{node name: [T, B, ...] values}``; ``.library``: ``{neuron node: the Lava process models that
    ran it and its synapses}`` for a ``library=True`` run (empty otherwise)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.library = {}


def _run_group(cmd: list[str], cwd: str, timeout: float) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; kill the whole group afterwards.

    Lava forks one process per node: killing only the runner would leave them running, and they
    would hold a stderr pipe open (so stderr goes to a file). Returns ``(exit status or None on
    timeout, the last 4000 characters of stderr)``.
    """
    err_path = os.path.join(cwd, "stderr.txt")
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the group is the runner's own session
            except ProcessLookupError:
                pass
            proc.wait()
    with open(err_path) as f:
        return returncode, f.read().strip()[-4000:]
