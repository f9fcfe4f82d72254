"""The names DESIGN.md promises are reachable from `import spikeattn`, and importing does no work."""

import subprocess
import sys

import spikeattn as sa


def test_design_api_names_exist():
    for name in ("LIF", "IF", "PLIF", "lif_multistep"):
        assert callable(getattr(sa.neuron, name))
    for name in ("ATan", "Sigmoid", "FastSigmoid", "Triangle", "Rectangle"):
        assert callable(getattr(sa.surrogate, name))
    for name in ("SpikingSelfAttention", "SpikeDrivenSelfAttention", "SPS", "SpikingTimeMix", "SpikingChannelMix", "wkv"):
        assert callable(getattr(sa.layers, name))
    for name in ("spikformer", "spikegpt", "list_presets"):
        assert callable(getattr(sa.models, name))
    for name in ("to_lava", "run_lava", "NotExportable"):
        assert hasattr(sa.export, name)
    assert callable(sa.opcount.count) and callable(sa.reset)


def test_import_loads_no_optional_backend():
    # Importing must not compile kernels or pull in CuPy / Lava / NIR (STYLE P6).
    code = ("import sys, spikeattn; bad = [m for m in ('cupy', 'lava', 'nir', 'h5py') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import spikeattn loaded {out}"
