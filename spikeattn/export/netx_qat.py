"""Quantisation-aware training for netx: a model whose forward pass computes with the file's numbers.

What a Loihi user does with lava-dl's slayer blocks (their ``pre_hook_fx`` quantises weights while
training): fine-tune with every weight on the deployment grid, so that the torch model *is* the
deployed model. ``to_netx`` of the result writes exactly the model's weights, biases, decays and
thresholds; the only difference left to lava-dl's run is netx's fixed-point arithmetic (decays rounded
toward zero, 24-bit state).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from spikeattn.export.graph import NotExportable, fold_batchnorm
from spikeattn.export.netx import _netx_layers
from spikeattn.export.netx_grid import NetxGrid
from spikeattn.neuron.lif import LIF, PLIF

__all__ = ["quantize_for_netx", "netx_tau"]

DECAY_UNIT = 4096    # netx's CUBA decays are 12-bit: vDecay / 4096 of the voltage leaks per step


def netx_tau(tau: float) -> float:
    """The time constant netx's 12-bit ``vDecay = round(4096 / tau)`` stands for: ``4096 / vDecay``."""
    v_decay = round(DECAY_UNIT / tau)
    if not 1 <= v_decay < DECAY_UNIT:
        raise ValueError(f"tau={tau!r} has no 12-bit netx decay (round(4096 / tau) = {v_decay}, "
                         f"needs 1..4095: 1.0002 < tau < 8192)")
    return DECAY_UNIT / v_decay


def quantize_for_netx(model: nn.Module, example_input: torch.Tensor, scale: str = "pow2") -> nn.Module:
    """A copy of ``model`` on netx's grid, to fine-tune before ``to_netx``:

    - BatchNorm folded into the layer before it (the file holds the folded weight);
    - each LIF's ``tau`` set to ``4096 / vDecay``, the 12-bit decay the file holds;
    - each exportable Linear/Conv2d weight and bias parametrised (``torch.nn.utils.parametrize``,
      ``NetxGrid``) onto the layer's 8-bit grid with a straight-through gradient, under one power-of-two
      scale per layer chosen now by ``scale`` (``"pow2"``, see ``netx_grid.choose_scale``)
      and kept while fine-tuning (a weight that grows past the largest mantissa is clipped);
    - each threshold at ``(vThMant + 1/64) / scale``: netx fires on ``v > vThMant << 6`` (6 fraction
      bits), torch on ``v >= v_th``.

    Args:
        model: what ``to_netx`` exports (Linear / PerStep(Conv2d, eval BatchNorm, AvgPool2d) + LIF/IF
            with hard reset to 0); PLIF is refused (its decay is learned, the file holds one).
        example_input: ``[T, B, ...]``; fixes the input shape.
        scale: the rule for each layer's scale.

    Returns:
        The new model; ``model`` is left as it was. Raises NotExportable listing every layer
        ``to_netx`` cannot write (and every PLIF), ValueError for a model already on the grid.

    Example:
        >>> q = quantize_for_netx(net.eval(), x[:, :1])   # then fine-tune q, then to_netx(q.eval(), path, x)
    """
    q = fold_batchnorm(model)
    plif = [(p, "PLIF", "its decay is learned but a netx file holds one 12-bit decay: replace it by "
             "LIF(tau=plif.tau) to fine-tune on the netx grid") for p, m in q.named_modules() if isinstance(m, PLIF)]
    if plif:
        raise NotExportable(plif)
    named = dict(q.named_modules())
    if any(parametrize.is_parametrized(m) for m in named.values()):
        raise ValueError("model already has parametrised weights (quantize_for_netx was applied, or another "
                         "parametrisation): apply it to the float model")
    for m in named.values():
        if isinstance(m, LIF):
            m.tau = netx_tau(m.tau)
    for layer in _netx_layers(q, example_input, scale)[1]:
        if layer["op"] == "flatten":
            continue
        syn = named[layer["module"]]
        parametrize.register_parametrization(syn, "weight", NetxGrid(layer["factor"], layer["scale"]))
        if syn.bias is not None:     # the bias's mantissa is wide (no clipping); the factor has no 1/window
            parametrize.register_parametrization(syn, "bias", NetxGrid(layer["gain"], layer["scale"], limit=None))
        named[layer["neuron"]].v_th = (layer["neuron_params"]["vThMant"] + 1 / 64) / layer["scale"]
    return q
