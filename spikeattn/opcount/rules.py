"""Counting rules: one function per aten op, kept in the table ``RULES`` {aten op: rule}.

A rule gets ``(args, kwargs, out, ctx)`` (the op's arguments and result, and an ``OperandContext``
that classifies tensors) and returns an ``OpCount`` or None. Only ops that move a weight per
input (matmuls and convolutions) have rules; elementwise ops, reductions and the custom LIF op
(``spikeattn::lif_forward``, counted per neuron by the counter) are ignored.

Conventions (``docs/opcount.md``):

* ``mac``: dense multiply-accumulates, what a GPU does whatever the values.
* An operand is *event-valued* when all its values are integers (binary 0/1, or sums of spikes).
  Each nonzero value ``v`` in it triggers ``fan-out`` synaptic accumulates: ``sop`` counts
  ``sum |v| * fan-out`` (``nnz * fan-out`` when binary) and ``sop_mul`` counts the alternative of
  one multiply per nonzero (``nnz * fan-out``, integer operands only).
* A real-valued op (no event operand) costs ``real_mac`` = its dense MACs on any hardware.
* Both operands event-valued (``Q @ K^T``): ``event_min = min(nnz(A) * N, nnz(B) * M)`` (the cheaper
  operand is the event, the other is read like a weight) is the ``sop``; ``pairs`` is the exact
  number of event x event pairs, ``sum(|A| @ |B|)`` (``sum(A @ B)``, the 1*1 pairs, for binary A, B;
  an integer value m counts as m events, as in ``sop``).
* Parameters and buffers of the model are weights, never events, whatever their values.
* ``bytes``: one weight element read per accumulate for event-driven ops; every operand read
  once for real-valued ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable

import torch

aten = torch.ops.aten

REAL, BINARY, INTEGER = "real", "binary", "integer"


@dataclass
class OpCount:
    """What one op costs (all integers); see the module docstring for each field."""

    mac: int = 0
    real_mac: int = 0
    sop: int = 0
    sop_mul: int = 0
    pairs: int = 0
    event_min: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


OP_FIELDS = tuple(f.name for f in fields(OpCount))


@dataclass(frozen=True)
class Operand:
    """An operand's class (real, binary or integer) and, for events, its nonzeros and sum of |values|."""

    kind: str
    nnz: int = 0
    abs_sum: int = 0


_REAL = Operand(REAL)
_SAMPLE = 4096  # elements checked first: a real-valued tensor almost always fails on them


class OperandContext:
    """Classifies operands: weight (a parameter/buffer storage), binary, integer or real.

    ``event_driven=False`` classifies everything as real (the ANN view: dense MACs everywhere).
    """

    def __init__(self, weight_storages: set[int], event_driven: bool = True):
        self.weight_storages = weight_storages
        self.event_driven = event_driven

    def kind(self, x: torch.Tensor) -> str:
        return self.classify(x).kind

    def classify(self, x: torch.Tensor) -> Operand:
        if not self.event_driven or x.numel() == 0 or x.is_complex():
            return _REAL
        if x.untyped_storage().data_ptr() in self.weight_storages:
            return _REAL  # a weight: read per event, never an event itself
        if x.dtype == torch.bool:
            nnz = int(x.count_nonzero())
            return Operand(BINARY, nnz, nnz)
        if x.is_floating_point() and x.is_contiguous():
            head = x.view(-1)[:_SAMPLE]
            if not torch.equal(head, head.round()):
                return _REAL
        lo, hi = torch.aminmax(x)
        if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
            return _REAL  # NaN or inf: not a count of events
        if lo >= 0 and hi <= 1:
            # values in [0, 1]: sum == nnz exactly when every nonzero is 1 (no rounding pass needed)
            nnz, total = int(x.count_nonzero()), float(x.sum(dtype=torch.float64))
            return Operand(BINARY, nnz, nnz) if total == nnz else _REAL
        if x.is_floating_point() and not torch.equal(x, x.round()):
            return _REAL
        return Operand(INTEGER, int(x.count_nonzero()), _isum(x.abs()))


def _magnitude(x: torch.Tensor) -> torch.Tensor:
    """|x| as float (events per value)."""
    return x.abs().to(torch.float64 if x.dtype == torch.float64 else torch.float32)


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    return (x != 0).to(torch.float32)


def _isum(x: torch.Tensor) -> int:
    return int(round(float(x.sum(dtype=torch.float64))))


def _matmul_count(a: torch.Tensor, b: torch.Tensor, ctx: OperandContext) -> OpCount:
    """Counts for ``a [..., M, K] @ b [..., K, N]`` (equal leading batch dims)."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = math.prod(a.shape[:-2])
    c = OpCount(mac=batch * m * k * n)
    oa, ob = ctx.classify(a), ctx.classify(b)
    # Each event in a row of ``a`` adds one row of ``b`` (N values); each event of ``b`` adds a column of ``a``.
    opts = []
    if oa.kind != REAL:
        opts.append((oa.abs_sum * n, oa.nnz * n if oa.kind == INTEGER else 0, b.element_size()))
    if ob.kind != REAL:
        opts.append((ob.abs_sum * m, ob.nnz * m if ob.kind == INTEGER else 0, a.element_size()))
    if not opts:
        c.real_mac = c.mac
        c.bytes = a.numel() * a.element_size() + b.numel() * b.element_size()
        return c
    sop, mul, w_bytes = min(opts, key=lambda o: o[0])
    c.sop, c.sop_mul, c.bytes = sop, mul, sop * w_bytes
    if len(opts) == 2:
        c.event_min = sop
        # sum(|a| @ |b|) = sum_k (column k of |a| summed) * (row k of |b| summed): O(MK + KN), no matmul
        col_a = _magnitude(a).sum(dim=-2, dtype=torch.float64)  # (..., K)
        row_b = _magnitude(b).sum(dim=-1, dtype=torch.float64)  # (..., K)
        c.pairs = _isum(col_a * row_b)
    return c


def mm_rule(args, kwargs, out, ctx):
    return _matmul_count(args[0], args[1], ctx)


def addmm_rule(args, kwargs, out, ctx):
    return _matmul_count(args[1], args[2], ctx)  # the bias add is elementwise: ignored


def mv_rule(args, kwargs, out, ctx):
    return _matmul_count(args[0], args[1].unsqueeze(-1), ctx)


def addmv_rule(args, kwargs, out, ctx):
    return _matmul_count(args[1], args[2].unsqueeze(-1), ctx)


def dot_rule(args, kwargs, out, ctx):
    return _matmul_count(args[0].unsqueeze(0), args[1].unsqueeze(-1), ctx)


def _conv_args(args):
    x, w = args[0], args[1]
    nd = w.dim() - 2
    stride, padding, dilation = (tuple(args[i]) for i in (3, 4, 5))
    transposed, output_padding, groups = bool(args[6]), tuple(args[7]), int(args[8])
    return x, w, nd, stride, padding, dilation, transposed, output_padding, groups


def _occupancy(x_map: torch.Tensor, w: torch.Tensor, conv) -> int:
    """Exact (nonzero input, output position) pairs, weighted by ``x_map``, summed over all groups.

    Sums the input channels of each group first, then convolves with a ones kernel (one per
    group), so every output position holds the weight of the inputs in its receptive field.
    """
    _, _, nd, stride, padding, dilation, transposed, output_padding, groups = conv
    n, cin = x_map.shape[:2]
    per_group = x_map.reshape(n, groups, cin // groups, *x_map.shape[2:]).sum(2)  # (N, g, *spatial)
    ones = torch.ones((groups, 1, *w.shape[2:]), dtype=per_group.dtype, device=per_group.device)
    occ = aten.convolution.default(per_group, ones, None, stride, padding, dilation, transposed, output_padding, groups)
    return _isum(occ)


def convolution_rule(args, kwargs, out, ctx):
    """Convolution (1d/2d/3d, stride, padding, dilation, groups, transposed) with exact border fan-out."""
    conv = _conv_args(args)
    x, w, nd, *_, transposed, _op, groups = conv
    k = math.prod(w.shape[2:])
    # Non-transposed weight is (Cout, Cin/g, *k); transposed is (Cin, Cout/g, *k).
    cout_per_group = w.shape[1] if transposed else w.shape[0] // groups
    cin_per_group = w.shape[0] // groups if transposed else w.shape[1]
    if transposed:
        mac = x.numel() * cout_per_group * k
    else:
        mac = out.numel() * cin_per_group * k
    c = OpCount(mac=mac)
    kind = ctx.kind(x)
    if kind == REAL:
        c.real_mac = mac
        c.bytes = x.numel() * x.element_size() + w.numel() * w.element_size()
        return c
    c.sop = _occupancy(_magnitude(x), w, conv) * cout_per_group
    if kind == INTEGER:
        c.sop_mul = _occupancy(_nonzero(x), w, conv) * cout_per_group
    c.bytes = c.sop * w.element_size()
    return c


RuleFn = Callable[[tuple, dict, object, OperandContext], "OpCount | None"]

# The default table. Copy and extend it through ``count(..., extra_rules={op: fn})``.
RULES: dict[object, RuleFn] = {
    aten.mm.default: mm_rule,
    aten.bmm.default: mm_rule,
    aten.addmm.default: addmm_rule,
    aten.baddbmm.default: addmm_rule,
    aten.mv.default: mv_rule,
    aten.addmv.default: addmv_rule,
    aten.dot.default: dot_rule,
    aten.convolution.default: convolution_rule,
}
