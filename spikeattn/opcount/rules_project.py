"""Rules for spikeattn's own registered ops, keyed by their torch.library names.

The counter runs these ops as training does (fused kernels, oneDNN GEMMs inside) and counts each
as the matmuls it stands for, through the same ``_matmul_count`` as the aten rules, so a counted
forward gives the same totals whichever backend ran. The LIF ops are counted per neuron by the
counter's hooks, not here; the WKV recurrence is elementwise work (not counted, as in its torch
reference); backward ops never run under the counter (it counts without autograd).
"""

from __future__ import annotations

import torch

from spikeattn.ops.ssa.matmul import acc_dtype, split_heads, ssa_order
from spikeattn.opcount.rules import BINARY, OpCount, Operand, _matmul_count


def spike_linear_rule(args, kwargs, out, ctx) -> OpCount:
    """``spikeattn::spike_linear(x, W, b, is_spikes)``: ``x [..., I] @ W[O, I]^T``."""
    x, w = args[0], args[1]
    return _matmul_count(x.reshape(-1, x.shape[-1]), w.t(), ctx)


def ssa_count(qkv: torch.Tensor, heads: int, order: str, ctx) -> OpCount:
    """The SSA core ``Q K^T V`` per head as its two matmuls, in ``order`` (``auto``: the cheaper one)."""
    q, k, v = split_heads(qkv, heads).to(acc_dtype(qkv.dtype)).contiguous().unbind(0)  # (..., H, N, d)
    if order == "auto":
        order = ssa_order(q.shape[-2], q.shape[-1])
    kt = k.transpose(-2, -1)
    if ctx.classify(qkv).kind == BINARY:  # a LIF output (usually known already): Q, K, V need only their counts
        for t, view in ((q, q), (k, kt), (v, v)):
            nnz = int(t.sum(dtype=torch.float64))
            ctx.remember(view, Operand(BINARY, nnz, nnz))
    if order == "qk_first":
        middle = q @ kt                                        # (..., H, N, N) integer counts
        return _matmul_count(q, kt, ctx) + _matmul_count(middle, v, ctx)
    middle = kt @ v                                            # (..., H, d, d) integer counts
    return _matmul_count(kt, v, ctx) + _matmul_count(q, middle, ctx)


def ssa_fused_rule(args, kwargs, out, ctx) -> OpCount:
    """``spikeattn::ssa_forward(qkv, heads, scale)`` (the fused CPU kernel): the cheaper association."""
    return ssa_count(args[0], args[1], "auto", ctx)


def ssa_matmul_rule(args, kwargs, out, ctx) -> OpCount:
    """``spikeattn::ssa_matmul(qkv, heads, scale, order)``: the association it ran."""
    return ssa_count(args[0], args[1], args[3], ctx)


PROJECT_RULES = {
    "spikeattn::spike_linear": spike_linear_rule,
    "spikeattn::ssa_forward": ssa_fused_rule,
    "spikeattn::ssa_matmul": ssa_matmul_rule,
}
