"""Model -> framework-neutral graph: a list of nodes in run order plus named float32 arrays.

One converter per module type (``CONVERTERS``, a table, not an isinstance ladder). Containers
(``nn.Sequential``, ``PerStep``) are walked; BatchNorm is folded into the preceding Linear/Conv
first (``fold_batchnorm``) so the graph never holds a BN node. A node is a dict:
``{"name", "op", "inputs": [names], "shape": per-sample output shape, "attrs", "params": {role: array key}}``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from spikeattn.export.per_step import PerStep
from spikeattn.neuron.lif import IF, LIF, PLIF

CONTAINERS = (nn.Sequential,)   # PerStep is an nn.Sequential
SKIPPED = (nn.Identity, nn.Dropout)


class NotExportable(Exception):
    """Raised with every offending module at once: ``.problems`` is a list of (path, type, why)."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        lines = "\n".join(f"  {p or '<root>'} ({t}): {why}" for p, t, why in problems)
        super().__init__(f"{len(problems)} module(s) cannot be exported:\n{lines}")


def _pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(i) for i in v]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each eval-mode BatchNorm folded into the Linear/Conv2d just before it.

    .. math:: W' = W \\gamma / \\sqrt{\\sigma^2 + \\epsilon}, \\quad b' = (b - \\mu) \\gamma / \\sqrt{\\sigma^2 + \\epsilon} + \\beta

    Folding is done in float64 and rounded once to float32; the BN becomes ``nn.Identity``. Run the
    folded copy in torch to compare spikes bit for bit with the exported graph. Resets ``model``'s neurons.
    """
    from spikeattn.neuron.base import reset

    reset(model)   # a membrane left from training is part of an autograd graph: it cannot be copied
    model = copy.deepcopy(model)
    for parent in model.modules():
        if not isinstance(parent, CONTAINERS):
            continue
        names = list(parent._modules)
        for prev, name in zip(names, names[1:]):
            bn, lin = parent._modules[name], parent._modules[prev]
            if not isinstance(lin, (nn.Linear, nn.Conv2d)):
                continue
            if foldable(bn):
                fold_into(lin, bn)
                parent._modules[name] = nn.Identity()
    return model


def foldable(bn: nn.Module) -> bool:
    """An eval-mode BatchNorm with running statistics (one in train mode is left, and reported)."""
    return isinstance(bn, nn.modules.batchnorm._BatchNorm) and not bn.training and bn.running_mean is not None


@torch.no_grad()
def fold_into(lin: nn.Linear | nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` (eval mode) into ``lin``'s weight and bias in place: float64, rounded once to float32."""
    scale = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    if bn.affine:
        scale = bn.weight.double() * scale
    shift = bn.bias.double() if bn.affine else torch.zeros_like(scale)
    b = lin.bias.double() if lin.bias is not None else torch.zeros_like(scale)
    lin.weight.copy_((lin.weight.double() * scale.reshape(-1, *([1] * (lin.weight.dim() - 1)))).float())
    new_b = ((b - bn.running_mean.double()) * scale + shift).float()
    if lin.bias is None:
        lin.bias = nn.Parameter(new_b)
    else:
        lin.bias.copy_(new_b)


# ----------------------------------------------------------------------------- converters
# Each returns (op, attrs, {role: tensor}) or raises ValueError(why).
def _linear(m: nn.Linear, per_step: bool):
    return "linear", {}, {"weight": m.weight, "bias": m.bias}


def _conv2d(m: nn.Conv2d, per_step: bool):
    if not per_step:
        raise ValueError("Conv2d must sit inside PerStep(...) (it sees [T*B, C, H, W])")
    if m.groups != 1 or _pair(m.dilation) != [1, 1] or m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ValueError("only groups=1, dilation=1, numeric zero padding are supported")
    return "conv2d", {"stride": _pair(m.stride), "padding": _pair(m.padding)}, {"weight": m.weight, "bias": m.bias}


def _pool(op):
    def convert(m, per_step: bool):
        if not per_step:
            raise ValueError(f"{type(m).__name__} must sit inside PerStep(...)")
        if m.ceil_mode or (op == "maxpool2d" and _pair(m.dilation) != [1, 1]):
            raise ValueError("ceil_mode and dilation are not supported")
        if op == "avgpool2d" and (not m.count_include_pad or m.divisor_override is not None):
            raise ValueError("only count_include_pad=True without divisor_override is supported")
        stride = m.stride if m.stride is not None else m.kernel_size
        return op, {"kernel": _pair(m.kernel_size), "stride": _pair(stride), "padding": _pair(m.padding)}, {}
    return convert


def _flatten(m: nn.Flatten, per_step: bool):
    if m.end_dim != -1 or m.start_dim != (1 if per_step else 2):
        raise ValueError("Flatten must flatten every per-sample dim (start_dim=1 in PerStep, 2 outside)")
    return "reshape", {}, {}


def _neuron(m, per_step: bool):
    if per_step or m.step_mode != "m" or m.batch_first:
        raise ValueError("neurons must run in step mode 'm' on [T, B, ...] (outside PerStep)")
    decay = float(torch.as_tensor(m.decay(torch.float32)).detach())        # tau (LIF), 1 (IF), k = 1/tau as float32 (PLIF)
    return "lif", {"mode": int(m.mode), "decay": decay, "v_th": float(m.v_th),
                   "v_reset": None if m.v_reset is None else float(m.v_reset),
                   "decay_input": bool(m.decay_input)}, {}


CONVERTERS = {
    nn.Linear: _linear, nn.Conv2d: _conv2d, nn.Flatten: _flatten,
    nn.MaxPool2d: _pool("maxpool2d"), nn.AvgPool2d: _pool("avgpool2d"),
    LIF: _neuron, IF: _neuron, PLIF: _neuron,
}


def _leaves(module: nn.Module, path: str, per_step: bool):
    """``(path, module, per_step)`` of every non-container module, in run order."""
    if isinstance(module, CONTAINERS):
        for name, child in module.named_children():
            yield from _leaves(child, f"{path}.{name}" if path else name, per_step or isinstance(module, PerStep))
    else:
        yield path, module, per_step


def build_graph(model: nn.Module, example_input: torch.Tensor) -> tuple[dict, dict]:
    """``(graph, arrays)`` of a BN-folded feed-forward model; raises NotExportable listing every problem.

    Args:
        model: eval-mode model of the pattern documented in ``PerStep``.
        example_input: ``[T, B, ...]`` input; fixes the per-sample input shape.
    """
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 3:
        raise ValueError(f"example_input must be a tensor [T, B, ...], got {getattr(example_input, 'shape', example_input)!r}")
    leaves = list(_leaves(model, "", False))
    problems, converted = [], []
    for path, m, per_step in leaves:
        if isinstance(m, SKIPPED):
            continue
        # a parametrised module (e.g. weights on netx's grid, quantize_for_netx) converts as its own class
        fn = CONVERTERS.get(parametrize.type_before_parametrizations(m))
        if fn is None:
            why = "BatchNorm must follow a Linear/Conv2d and be in eval mode" \
                if isinstance(m, nn.modules.batchnorm._BatchNorm) else "no converter for this module type"
            problems.append((path, type(m).__name__, why))
            continue
        try:
            converted.append((path, m, per_step, *fn(m, per_step)))
        except ValueError as e:
            problems.append((path, type(m).__name__, str(e)))
    if problems:
        raise NotExportable(problems)
    shapes = _output_shapes(model, example_input, [(p, m, s) for p, m, s, *_ in converted])

    nodes = [{"name": "input", "op": "input", "inputs": [], "shape": list(example_input.shape[2:]), "attrs": {}, "params": {}}]
    arrays = {}
    for path, m, per_step, op, attrs, tensors in converted:
        shape = shapes[path]
        if op == "reshape":
            attrs = {"shape": shape}
        params = {}
        for role, t in tensors.items():
            if t is not None:
                arrays[f"{path}.{role}"] = t.detach().to(torch.float32).cpu().numpy()
                params[role] = f"{path}.{role}"
        nodes.append({"name": path, "op": op, "inputs": [nodes[-1]["name"]], "shape": shape, "attrs": attrs, "params": params})
    return {"nodes": nodes, "output": nodes[-1]["name"], "input_unit": _input_unit(example_input)}, arrays


def _output_shapes(model, example_input, leaves) -> dict:
    """Per-sample output shape of every leaf, from one forward pass with hooks (state reset after)."""
    from spikeattn.neuron.base import reset

    shapes, hooks = {}, []
    for path, m, per_step in leaves:
        def hook(mod, args, out, path=path, skip=1 if per_step else 2):
            shapes[path] = list(out.shape[skip:])
        hooks.append(m.register_forward_hook(hook))
    try:
        reset(model)
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
        reset(model)
    return shapes


def _input_unit(x: torch.Tensor) -> float:
    # Fixed point needs an integer input grid: 1 for spike/count inputs, else 8 bits over the range.
    if torch.equal(x, x.round()):
        return 1.0
    peak = float(x.abs().max())
    return peak / 127.0 if peak > 0 else 1.0
