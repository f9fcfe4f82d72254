"""netx files run by lava-dl 0.6.0 itself (``lava.lib.dl.netx.hdf5.Network`` in ``.venv-netx``, built by
``make netx-env``: lava-dl installed --no-deps, its torch import satisfied by hardware/lava/netx_stub,
because netx's load-and-simulate path never calls torch). Hidden and output spikes agree with the torch
model on >= 99% of values at every layer, after removing netx's one-step-per-layer delay and switching
each layer's bias on when its input arrives (hardware/lava/netx_run.py). The torch model is the one
with netx's 8-bit weights (``netx_reference``: the file's own numbers); against the float original the
8-bit weights cost more (recorded by benchmarks/netx_agreement.py, bounded here at 95%)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.export import NotExportable, to_netx
from spikeattn.export.netx import netx_python, netx_reference, run_netx
from tests.export.helpers import torch_layers
from tests.export.netx_nets import NETS, rate_input

T, B = 8, 2


def require_netx():
    if not netx_python().is_file():
        pytest.skip(f"netx env missing ({netx_python()}): run `make netx-env`")


def neuron_paths(net: nn.Module) -> list[str]:
    return [p for p, m in net.named_modules() if isinstance(m, (N.LIF, N.IF, N.PLIF))]


@pytest.mark.parametrize("name", list(NETS))
def test_lavadl_runs_the_file(name, tmp_path):
    require_netx()
    net, x = NETS[name](), rate_input(B, T)
    path = to_netx(net, tmp_path / f"{name}.net", x)
    blocks = run_netx(path, x.numpy())
    ref, orig = torch_layers(netx_reference(net, x), x), torch_layers(net, x)
    paths = neuron_paths(net)
    assert len(blocks) == len(paths)          # one netx block per neuron layer (pooling folded in)
    for path_, got in zip(paths, blocks):
        want = ref[path_].numpy()
        agree = (got.reshape(want.shape) == want).mean()
        assert agree >= 0.99, f"{name} layer {path_}: {agree:.4f} of spikes agree with torch (netx weights)"
        assert 0.01 < want.mean() < 0.5, f"{name} layer {path_} fires {want.mean():.3f}: a weak check"
        assert (got.reshape(want.shape) == orig[path_].numpy()).mean() >= 0.95


def test_run_netx_input_errors(tmp_path):
    net, x = NETS["mlp"](), rate_input(1, 2)
    path = to_netx(net, tmp_path / "m.net", x)
    with pytest.raises(ValueError, match="binary spikes"):
        run_netx(path, x.numpy() * 0.5)


def test_soft_reset_refused_with_reason(tmp_path):
    net = nn.Sequential(nn.Linear(8, 4), N.LIF(v_reset=None), nn.Linear(4, 2), N.IF(v_reset=None)).eval()
    with pytest.raises(NotExportable) as e:
        to_netx(net, tmp_path / "s.net", torch.rand(1, 1, 8))
    assert [(p, t) for p, t, _ in e.value.problems] == [("1", "LIF"), ("3", "IF")]
    assert all("soft reset" in why and "resets to 0" in why for _, _, why in e.value.problems)
    assert not (tmp_path / "s.net").exists()
