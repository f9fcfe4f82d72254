"""Shared by the export tests: the Lava skip, small SNNs, Fashion-MNIST input, torch layer traces."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeattn.neuron as N
from spikeattn.data import fashion_mnist
from spikeattn.export import PerStep
from spikeattn.export.lava import lava_python


def require_lava():
    if not lava_python().is_file():
        pytest.skip(f"Lava env missing ({lava_python()}): run `make lava-env`")


def fashion_input(n: int, t: int) -> torch.Tensor:
    """Direct encoding: the first ``n`` normalised test images repeated ``t`` times -> ``[T, n, 1, 28, 28]``."""
    images = fashion_mnist("test", limit=n).images
    return images.unsqueeze(0).repeat(t, 1, 1, 1, 1)


def scale_weights(net: nn.Module, gain: float) -> nn.Module:
    # Default init gives almost no spikes on few steps; a gain makes every layer fire.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(gain)
    return net


def mlp(neuron=lambda: N.LIF(tau=2.0), hidden: int = 64) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(PerStep(nn.Flatten()), nn.Linear(784, hidden), neuron(), nn.Linear(hidden, 10), neuron())
    return scale_weights(net, 3.0).eval()


def trained_bn_stats(net: nn.Module) -> None:
    """BatchNorm running statistics and affine parameters as after training (not 0/1)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(0.0, 0.5)


def conv_bn() -> nn.Module:
    """Conv + BN (eval, non-trivial statistics) + max/avg pooling; neurons of every reset kind."""
    torch.manual_seed(1)
    net = nn.Sequential(
        PerStep(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)), N.LIF(tau=2.0),
        PerStep(nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8)), N.IF(v_reset=None),
        PerStep(nn.AvgPool2d(2), nn.Flatten()), nn.Linear(8 * 3 * 3, 10), N.LIF(tau=3.0, decay_input=False),
    )
    trained_bn_stats(net)
    return scale_weights(net, 2.0).eval()


def torch_layers(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{module path: [T, B, features] output}`` of every leaf, named as the exporter names its nodes."""
    t, b = x.shape[:2]
    out, hooks = {}, []
    for path, m in model.named_modules():
        # a parametrised weight (quantize_for_netx) is a child module: not a layer of its own
        if ".parametrizations." not in path and not [n for n, _ in m.named_children() if n != "parametrizations"]:
            # PerStep layers see [T*B, ...], the others [T, B, ...]: flatten the sample dims.
            hooks.append(m.register_forward_hook(
                lambda mod, a, y, path=path: out.__setitem__(path, y.detach().reshape(t, b, -1))))
    N.reset(model)
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    N.reset(model)
    return out


def conv_bn_library() -> nn.Module:
    """A conv SNN whose later layers Lava's process library can run: a spike-fed Conv + BN + LIF
    and a Linear on pooled spike counts into an IF, after a first conv on graded pixels."""
    torch.manual_seed(2)
    net = nn.Sequential(
        PerStep(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)), N.LIF(tau=2.0),
        PerStep(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)), N.LIF(tau=2.0),
        PerStep(nn.AvgPool2d(2), nn.Flatten()), nn.Linear(16 * 7 * 7, 10), N.IF(),
    )
    trained_bn_stats(net)
    scale_weights(net, 2.0)
    with torch.no_grad():   # pooled spikes are sparse: stronger weights make every layer fire (15%, 18%, 9%)
        net[2][1].weight.mul_(6.0)
        net[5].weight.mul_(6.0)
    return net.eval()
