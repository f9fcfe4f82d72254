"""Fixed point (Loihi-style integers, experimental): runs, and most spikes still agree with torch."""

from __future__ import annotations

from spikeattn.export import run_lava, to_lava
from tests.export.helpers import fashion_input, mlp, require_lava, torch_layers


def test_mlp_fixed_point_agreement(tmp_path):
    require_lava()
    net, x = mlp(), fashion_input(6, 4)
    art = to_lava(net, tmp_path / "a", x)
    _, layers = run_lava(art, x.numpy(), fixed_point=True, return_layers=True)
    ref = torch_layers(net, x)
    for n in art.graph["nodes"]:
        if n["op"] == "lif":
            agree = (layers[n["name"]].reshape(ref[n["name"]].shape) == ref[n["name"]].numpy()).mean()
            assert agree >= 0.99, f"{n['name']}: {agree:.4f} of spikes agree in fixed point"
