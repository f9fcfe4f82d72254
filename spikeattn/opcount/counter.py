"""The counter: one forward under a ``TorchDispatchMode``, ops attributed to the module running them.

Every aten op reaches ``__torch_dispatch__`` after decomposition, so ``@``, ``einsum``, ``F.linear``,
``conv*d`` and functional code are all seen, not only ``nn.Linear``/``nn.Conv`` modules. Module
forward pre/post hooks keep a stack of module paths; an op is charged to the innermost one. Neuron
modules (``NEURON_TYPES``) are counted by a forward hook: one update per neuron per time step.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from spikeattn.neuron import IF, LIF, PLIF, reset
from spikeattn.ops.lif import state_dtype
from spikeattn.opcount.coverage import no_synaptic_work
from spikeattn.opcount.report import OpReport
from spikeattn.opcount.static import footprint_bytes, module_connections, used_connections, zero_counts
from spikeattn.opcount.rules import BINARY, OP_FIELDS, Operand, OperandContext
from spikeattn.opcount.table import RULES

# Module types counted as spiking neurons; extend with ``count(..., neuron_types=(...))``.
NEURON_TYPES: tuple[type[nn.Module], ...] = (LIF, IF, PLIF)
# Non-spiking activations whose outputs count in ActivationSparsity (NeuroBench 2.3's default set).
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.Sigmoid)
# Neurons whose outputs are 0/1 spikes whatever their input (others' outputs are classified by value).
BINARY_NEURONS: tuple[type[nn.Module], ...] = (LIF, IF, PLIF)

ROOT = "(root)"


class UncountedOpWarning(UserWarning):
    """An op that may do synaptic work ran without a counting rule."""


class _Recorder:
    """Accumulates op and neuron counts per module path."""

    def __init__(self):
        self.ops: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OP_FIELDS, 0))
        self.by_op: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OP_FIELDS, 0))
        self.neurons: dict[str, dict] = {}
        self.uncounted: Counter[str] = Counter()  # op name -> calls met without a rule
        self.activations: dict[str, list[int]] = {}  # activation module path -> [nonzeros, outputs]

    def add_activation(self, path: str, nonzero: int, outputs: int) -> None:
        rec = self.activations.setdefault(path, [0, 0])
        rec[0] += nonzero
        rec[1] += outputs

    def add_op(self, path: str, op_name: str, counts: dict[str, int]) -> None:
        for table in (self.ops[path], self.by_op[op_name]):
            for key, value in counts.items():
                table[key] += value

    def add_neuron(self, path: str, kind: str, updates: int, spikes: int, state_bytes: int) -> None:
        rec = self.neurons.setdefault(path, {"type": kind, "updates": 0, "spikes": 0, "bytes": 0})
        rec["updates"] += updates
        rec["spikes"] += spikes
        rec["bytes"] += 2 * state_bytes * updates  # membrane read + written per update


class _CountingMode(TorchDispatchMode):
    """Runs every op as it is (the counted forward takes the same paths as an uncounted one) and
    counts those the rules know, looked up by op object or by name (``aten::mm``, ``spikeattn::ssa_forward``).
    An op with no rule that may do synaptic work (``coverage.no_synaptic_work``) is recorded as uncounted."""

    def __init__(self, rules, ctx: OperandContext, stack: list[str], rec: _Recorder):
        super().__init__()
        self.rules, self.ctx, self.stack, self.rec = rules, ctx, stack, rec
        self._found: dict = {}  # func -> (rule or None, free), so each op's name is looked up once

    def _rule(self, func):
        if func not in self._found:
            rule = self.rules.get(func) or self.rules.get(func.name())
            self._found[func] = rule, rule is None and no_synaptic_work(func)
        return self._found[func]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule, free = self._rule(func)
        if rule is None and not free:
            self.rec.uncounted[func.name()] += 1
        if rule is not None:
            # The mode is switched off inside __torch_dispatch__, so the rule's own ops are not counted.
            counts = rule(args, kwargs, out, self.ctx)
            if counts is not None:
                self.rec.add_op(self.stack[-1], str(func.overloadpacket.__name__), counts.as_dict())
        return out


def _install_hooks(named: list[tuple[str, nn.Module]], stack: list[str], rec: _Recorder, neuron_types,
                   ctx: OperandContext) -> list:
    names = {}
    for name, module in named:
        names.setdefault(module, name or ROOT)  # a shared module keeps its first name
    handles = []

    def pre(module, _args):
        stack.append(names[module])

    def post(module, _args, _out):
        stack.pop()

    def neuron_post(module, args, out):
        x = args[0]
        spikes = out[0] if isinstance(out, tuple) else out
        n = int(round(spikes.sum(dtype=torch.float64).item()))
        # x is [T, B, ...] ('m') or [B, ...] ('s'): either way one update per element.
        rec.add_neuron(names[module], type(module).__name__, x.numel(), n, state_dtype(x.dtype).itemsize)
        nonzero = n if isinstance(module, BINARY_NEURONS) else int(torch.count_nonzero(spikes))
        rec.add_activation(names[module], nonzero, spikes.numel())
        if isinstance(module, BINARY_NEURONS):
            # 0/1 by construction: the layer that reads them next need not scan them again
            ctx.remember(spikes, Operand(BINARY, n, n))

    for module in names:
        handles.append(module.register_forward_pre_hook(pre))
        if isinstance(module, neuron_types):
            handles.append(module.register_forward_hook(neuron_post))
        elif isinstance(module, ACTIVATION_TYPES):
            handles.append(module.register_forward_hook(
                lambda m, a, out: rec.add_activation(names[m], int(torch.count_nonzero(out)), out.numel())))
        handles.append(module.register_forward_hook(post, always_call=True))
    return handles


def _weight_storages(model: nn.Module) -> set[int]:
    tensors = list(model.parameters()) + list(model.buffers())
    return {t.untyped_storage().data_ptr() for t in tensors if t.numel() > 0}


def _call(model, example_input, forward_kwargs):
    if isinstance(example_input, (tuple, list)):
        return model(*example_input, **forward_kwargs)
    return model(example_input, **forward_kwargs)


def _samples(example_input) -> int:
    """NeuroBench's per-sample divisor: the leading dim of the (first) input tensor."""
    first = example_input[0] if isinstance(example_input, (tuple, list)) and example_input else example_input
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1


def run_count(model: nn.Module, example_input, forward_kwargs: dict, *, extra_rules=None, neuron_types=None,
              event_driven: bool = True, samples: int | None = None) -> OpReport:
    """``count`` with the ANN switch (``event_driven=False``: every operand real-valued)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    rules = {**RULES, **(extra_rules or {})}
    neuron_types = tuple(neuron_types) if neuron_types is not None else NEURON_TYPES
    rec, stack = _Recorder(), [ROOT]
    named = list(model.named_modules())  # one walk of the module tree serves every step below
    zeros = zero_counts(model)  # per parameter: connection sparsity, and which weights have no zero
    ctx = OperandContext(_weight_storages(model), event_driven, zeros)
    # Counting must not change the model: BN running stats (train mode) are restored afterwards.
    buffers = list(model.named_buffers())
    saved = [buf.detach().clone() for _, buf in buffers]
    reset(model)
    handles = _install_hooks(named, stack, rec, neuron_types, ctx)
    try:
        with torch.no_grad(), _CountingMode(rules, ctx, stack, rec):
            _call(model, example_input, forward_kwargs)
    finally:
        for h in handles:
            h.remove()
        reset(model)
        with torch.no_grad():
            for (_, buf), old in zip(buffers, saved):
                buf.copy_(old)
    types = {name or ROOT: type(m).__name__ for name, m in named}
    for name, calls in sorted(rec.uncounted.items()):
        # One stable message per op: Python's default filter shows it once per process.
        warnings.warn(f"spikeattn.opcount has no rule for {name}: its work is not in the totals (listed in "
                      "report.uncounted; energy figures are lower bounds). Add one with extra_rules={op: fn}.",
                      UncountedOpWarning, stacklevel=3)
    model_figures = {"footprint_bytes": footprint_bytes(model),
                     "module_connections": module_connections(model, zeros),
                     "used_connections": used_connections(model, ctx.used_weights, zeros)}
    return OpReport(dict(rec.ops), dict(rec.by_op), rec.neurons, types, event_driven=event_driven,
                    uncounted=dict(rec.uncounted), activations=rec.activations, model_figures=model_figures,
                    samples=samples or _samples(example_input))


def count(model: nn.Module, example_input, *, extra_rules=None, neuron_types=None, samples: int | None = None,
          **forward_kwargs) -> OpReport:
    """Run ``model`` once on ``example_input`` and count its operations, neuron updates and bytes.

    Args:
        model: any ``nn.Module``; its state is reset (``spikeattn.reset``) before and after, its
            buffers are restored, and hooks are removed even if the forward raises (then re-raised).
        example_input: a tensor (``model(x)``) or a tuple/list of positional arguments,
            e.g. spikes ``[T, B, ...]``.
        extra_rules: ``{op: rule}`` added to (or overriding) ``spikeattn.opcount.RULES``; an op is an
            ``OpOverload`` (``torch.ops.aten.mm.default``) or its name (``"aten::mm"``, ``"mylib::op"``).
        neuron_types: module types counted as neurons (default ``NEURON_TYPES``: LIF, IF, PLIF).
        samples: how many samples ``example_input`` holds, for per-sample figures (``neurobench()``);
            default: its (first tensor's) leading dim, NeuroBench's convention.
        **forward_kwargs: passed to ``model.forward``.

    Returns:
        ``OpReport``: per-module counts (``by_module``), ``total(key)``, ``firing_rates``, energy.

    Example:
        >>> report = count(nn.Sequential(nn.Linear(8, 4), LIF()), torch.rand(4, 2, 8))
        >>> report.total("mac")
        256
    """
    return run_count(model, example_input, forward_kwargs, extra_rules=extra_rules, neuron_types=neuron_types,
                     samples=samples)
