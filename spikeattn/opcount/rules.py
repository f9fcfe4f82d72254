"""Counting rules for aten ops, kept in the table ``ATEN_RULES`` {aten op: rule}.

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
* ``sop_nzw``: ``sop`` less the accumulates whose weight is exactly zero (what hardware that stores
  only nonzero synapses executes); equal to ``sop`` when no weight is zero.
* ``nb_ac`` / ``nb_mac`` / ``nb_dense``: NeuroBench 2.3's SynapticOperations per op, by its
  definitions (``docs/opcount.md``): binarised inputs through binarised weights, bias left out.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
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
    sop_nzw: int = 0    # ``sop`` without the accumulates that meet a zero weight (sparse-synapse hardware)
    nb_ac: int = 0      # NeuroBench 2.3's Effective_ACs: (nonzero input, nonzero weight) pairs, input in {-1,0,1}
    nb_mac: int = 0     # NeuroBench's Effective_MACs: the same pairs for any other input
    nb_dense: int = 0   # NeuroBench's Dense: every (input, weight) pair, padding taps left out

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}

    def __add__(self, other: "OpCount") -> "OpCount":
        return OpCount(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


OP_FIELDS = tuple(f.name for f in fields(OpCount))


@dataclass(frozen=True)
class Operand:
    """An operand's class (real, binary or integer) and, for events, its nonzeros and sum of |values|."""

    kind: str
    nnz: int = 0
    abs_sum: int = 0


_REAL = Operand(REAL)
_SAMPLE = 4096  # elements checked first: a real-valued tensor almost always fails on them
_RECENT = 8     # classified tensors remembered (and kept alive) by an OperandContext


class OperandContext:
    """Classifies operands: weight (a parameter/buffer storage), binary, integer or real.

    ``event_driven=False`` classifies everything as real (the ANN view: dense MACs everywhere).
    """

    def __init__(self, weight_storages: set[int], event_driven: bool = True, weight_zeros: dict[int, int] | None = None):
        self.weight_storages = weight_storages
        self.event_driven = event_driven
        self.used_weights: set[int] = set()  # weight storages read as an operand (connection sparsity)
        self.weight_zeros = weight_zeros or {}  # parameter storage -> zero entries
        # Recent answers: one spike tensor often feeds several matmuls (SSA's Q, K and V Linears).
        # Keyed by memory, layout and in-place version (``_key``); each entry holds its tensor, so
        # the memory cannot be freed and reused by another tensor while the entry lives.
        self._recent: OrderedDict[tuple, tuple[torch.Tensor, Operand]] = OrderedDict()

    def kind(self, x: torch.Tensor) -> str:
        return self.classify(x).kind

    def is_full_weight(self, x: torch.Tensor) -> bool:
        """A weight (as ``is_weight``) of a parameter with no zero entry (``weight_zeros``, counted once)."""
        return self.is_weight(x) and self.weight_zeros.get(x.untyped_storage().data_ptr()) == 0

    def is_weight(self, x: torch.Tensor) -> bool:
        """A parameter or buffer of the model (a view of one included); remembered as used."""
        storage = x.untyped_storage().data_ptr() if x.numel() else None
        if storage in self.weight_storages:
            self.used_weights.add(storage)
            return True
        return False

    def classify(self, x: torch.Tensor) -> Operand:
        if self.is_weight(x):
            return _REAL  # a weight: read per event, never an event itself
        if not self.event_driven or x.numel() == 0 or x.is_complex():
            return _REAL
        key = _key(x)
        hit = self._recent.get(key)
        if hit is not None:
            self._recent.move_to_end(key)
            return hit[1]
        operand = self._classify(x)
        self.remember(x, operand)
        return operand

    def remember(self, x: torch.Tensor, operand: Operand) -> None:
        """Record what ``x`` is (the counter tells it about neuron outputs, known to be 0/1 spikes)."""
        self._recent[_key(x)] = (x, operand)
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    def _classify(self, x: torch.Tensor) -> Operand:
        if x.dtype == torch.bool:
            nnz = int(x.sum(dtype=torch.int64))
            return Operand(BINARY, nnz, nnz)
        if x.is_floating_point() and x.is_contiguous():
            head = x.view(-1)[:_SAMPLE]
            if not torch.equal(head, head.round()):
                return _REAL
        # Python scalars from here: each tensor comparison would be one more op launch.
        lo, hi = (v.item() for v in torch.aminmax(x))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return _REAL  # NaN or inf: not a count of events
        if lo >= 0 and hi <= 1:
            # values in [0, 1]: sum == nnz exactly when every nonzero is 1 (no rounding pass needed)
            nnz, total = _nnz(x), x.sum(dtype=torch.float64).item()
            return Operand(BINARY, nnz, nnz) if total == nnz else _REAL
        if x.is_floating_point() and not torch.equal(x, x.round()):
            return _REAL
        return Operand(INTEGER, _nnz(x), _isum(x.abs()))


def _key(x: torch.Tensor) -> tuple:
    """Same key, same values: a contiguous tensor is its memory span (any shape: ``reshape`` views
    share it), anything else its exact view; plus the in-place version counter."""
    layout = (x.numel(),) if x.is_contiguous() else (tuple(x.shape), x.stride())
    return (x.data_ptr(), x.device, x.dtype, *layout, x._version)


def _nnz(x: torch.Tensor) -> int:
    """Nonzeros of a finite tensor: the float64 sum of |sign| is exact (below 2^53), and on the CPU it is
    2.5-4x faster than ``count_nonzero`` or a sum of ``x != 0``."""
    return int(x.sign().abs().sum(dtype=torch.float64).item())


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
    # A weight with no zero entry (the usual case) makes every nonzero of the other side meet its full
    # fan-out: no extra pass over the activations is needed for the nonzero-pair figures.
    full_a, full_b = ctx.is_full_weight(a), ctx.is_full_weight(b)
    nz_col_a = nz_row_b = None
    if full_b:
        pairs = (oa.nnz if oa.kind != REAL else _nnz(a)) * n
    elif full_a:
        pairs = (ob.nnz if ob.kind != REAL else _nnz(b)) * m
    else:
        nz_col_a = _nonzero(a).sum(dim=-2, dtype=torch.float64)   # (..., K) nonzeros per column of a
        nz_row_b = _nonzero(b).sum(dim=-1, dtype=torch.float64)   # (..., K) nonzeros per row of b
        pairs = _isum(nz_col_a * nz_row_b)
    inputs = [o for t, o in ((a, oa), (b, ob)) if not ctx.is_weight(t)]
    _neurobench(c, pairs, c.mac, inputs)
    if not opts:
        c.real_mac = c.mac
        c.bytes = a.numel() * a.element_size() + b.numel() * b.element_size()
        return c
    sop, mul, w_bytes = min(opts, key=lambda o: o[0])
    c.sop, c.sop_mul, c.bytes = sop, mul, sop * w_bytes
    if sop == opts[0][0] and oa.kind != REAL:  # events of a meet the nonzeros of b's rows
        c.sop_nzw = sop if full_b else _isum(_magnitude(a).sum(dim=-2, dtype=torch.float64) * (
            nz_row_b if nz_row_b is not None else _nonzero(b).sum(dim=-1, dtype=torch.float64)))
    else:                                       # events of b meet the nonzeros of a's columns
        c.sop_nzw = sop if full_a else _isum(_magnitude(b).sum(dim=-1, dtype=torch.float64) * (
            nz_col_a if nz_col_a is not None else _nonzero(a).sum(dim=-2, dtype=torch.float64)))
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


def linear_rule(args, kwargs, out, ctx):
    """``x [..., I] @ W[O, I]^T (+ b)``: oneDNN's fused Linear (``spikeattn.ops.linear``), counted as a matmul."""
    x, w = args[0], args[1]
    return _matmul_count(x.reshape(-1, x.shape[-1]), w.t(), ctx)


def mv_rule(args, kwargs, out, ctx):
    return _matmul_count(args[0], args[1].unsqueeze(-1), ctx)


def addmv_rule(args, kwargs, out, ctx):
    return _matmul_count(args[1], args[2].unsqueeze(-1), ctx)


def dot_rule(args, kwargs, out, ctx):
    return _matmul_count(args[0].unsqueeze(0), args[1].unsqueeze(-1), ctx)


@functools.lru_cache(maxsize=256)  # a few shapes per model, met again in every count; callers never mutate it
def _axis_coverage(size_in, size_out, k, stride, pad, dil, transposed) -> torch.Tensor:
    """For each input coordinate along one axis, how many (output coordinate, kernel tap) pairs use it.

    Direct: output ``o`` reads input ``o*s - p + j*d``; transposed: input ``i`` writes output
    ``i*s - p + j*d``. Taps that fall in the padding are not counted, so borders are exact.
    """
    taps = torch.arange(k) * dil
    if transposed:
        out = torch.arange(size_in)[:, None] * stride - pad + taps[None, :]  # (L_in, k)
        return ((out >= 0) & (out < size_out)).sum(1).to(torch.float64)
    pos = (torch.arange(size_out)[:, None] * stride - pad + taps[None, :]).flatten()
    pos = pos[(pos >= 0) & (pos < size_in)]
    return torch.bincount(pos, minlength=size_in).to(torch.float64)


def _occupancy(x_map: torch.Tensor, w: torch.Tensor, out: torch.Tensor, args) -> int:
    """Exact number of (event, output position) pairs, an event weighted by ``x_map`` (|x| or x != 0).

    The pairs an input position takes part in do not depend on its channel or group, and they
    factor per axis, so: sum over batch and channels, then weight each position by the outer
    product of the per-axis coverages. Multiply by the output channels per group for the fan-out.
    """
    stride, padding, dilation, transposed = args[3], args[4], args[5], bool(args[6])
    per_position = x_map.sum(dim=(0, 1), dtype=torch.float64)  # (*spatial)
    cov = torch.ones((), dtype=torch.float64)
    for axis, k in enumerate(w.shape[2:]):
        c = _axis_coverage(int(x_map.shape[2 + axis]), int(out.shape[2 + axis]), int(k), int(stride[axis]),
                           int(padding[axis]), int(dilation[axis]), transposed)
        cov = cov.unsqueeze(-1) * c  # outer product over the spatial axes so far
    return _isum(per_position * cov.to(per_position.device))


def convolution_rule(args, kwargs, out, ctx):
    """Convolution (1d/2d/3d, stride, padding, dilation, groups, transposed) with exact border fan-out."""
    x, w, transposed, groups = args[0], args[1], bool(args[6]), int(args[8])
    k = math.prod(w.shape[2:])
    # Non-transposed weight is (Cout, Cin/g, *k); transposed is (Cin, Cout/g, *k).
    cout_per_group = w.shape[1] if transposed else w.shape[0] // groups
    cin_per_group = w.shape[0] // groups if transposed else w.shape[1]
    mac = x.numel() * cout_per_group * k if transposed else out.numel() * cin_per_group * k
    c = OpCount(mac=mac)
    op = ctx.classify(x)
    zero_weights = not ctx.is_full_weight(w)
    dense = _occupancy(torch.ones_like(x[:1, :1]), w, out, args) * x.shape[0] * x.shape[1] * cout_per_group
    inputs = [op] if ctx.is_weight(w) else [op, ctx.classify(w)]
    if op.kind == REAL:
        c.real_mac = mac
        c.bytes = x.numel() * x.element_size() + w.numel() * w.element_size()
    else:
        c.sop = _occupancy(x if op.kind == BINARY else x.abs(), w, out, args) * cout_per_group
        if op.kind == INTEGER:
            c.sop_mul = _occupancy(x != 0, w, out, args) * cout_per_group
        c.sop_nzw = _conv_sum(x.abs(), w, args) if zero_weights else c.sop
        c.bytes = c.sop * w.element_size()
    if zero_weights:
        pairs = _conv_sum(x != 0, w, args)
    else:  # (nonzero input, tap) pairs: sop's occupancy for binary input, sop_mul's for integer input
        pairs = {BINARY: c.sop, INTEGER: c.sop_mul}.get(op.kind) or _occupancy(x != 0, w, out, args) * cout_per_group
    _neurobench(c, pairs, dense, inputs)
    return c


def _conv_sum(x_map: torch.Tensor, w: torch.Tensor, args) -> int:
    """``sum(conv(x_map, w != 0))`` in float64 (exact): events, or their magnitudes, times nonzero taps."""
    stride, padding, dilation, transposed, output_padding, groups = args[3:9]
    y = torch.convolution(x_map.to(torch.float64), (w != 0).to(torch.float64), None, stride, padding, dilation,
                          transposed, output_padding, groups)
    return _isum(y)


def _neurobench(c: OpCount, pairs: int, dense: int, inputs: list[Operand]) -> None:
    """NeuroBench's split: ACs when every input (non-weight operand) holds only -1, 0 and 1, else MACs."""
    spiking = all(o.kind == BINARY or (o.kind == INTEGER and o.abs_sum == o.nnz) for o in inputs)
    c.nb_dense = dense
    if spiking:
        c.nb_ac = pairs
    else:
        c.nb_mac = pairs


RuleFn = Callable[[tuple, dict, object, OperandContext], "OpCount | None"]

# The aten part of the default table (``spikeattn.opcount.table.RULES`` adds the rest).
ATEN_RULES: dict[object, RuleFn] = {
    aten.mm.default: mm_rule,
    aten.bmm.default: mm_rule,
    aten.addmm.default: addmm_rule,
    aten.baddbmm.default: addmm_rule,
    aten.mv.default: mv_rule,
    aten.addmv.default: addmv_rule,
    aten.dot.default: dot_rule,
    aten.convolution.default: convolution_rule,
}
if hasattr(torch.ops.mkldnn, "_linear_pointwise"):  # the op spikeattn.ops.linear runs on the CPU
    ATEN_RULES[torch.ops.mkldnn._linear_pointwise.default] = linear_rule
