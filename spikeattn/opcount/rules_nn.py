"""Rules for torch's fused attention and recurrent ops: each counted as the matmuls it performs.

* ``scaled_dot_product_attention`` (its CPU/CUDA kernels): ``Q K^T`` with its operands' classes, and
  ``P V`` with the attention probabilities ``P`` taken as real-valued (a softmax): events in ``V``
  are accumulates, otherwise dense MACs. A causal mask does not reduce the dense count.
* ``nn.MultiheadAttention``'s fused inference path (``_native_multi_head_attention``): the three input
  projections, the attention as above and the output projection (its input, a softmax average, real).
* ``nn.LSTM`` / ``GRU`` / ``RNN`` on oneDNN (``mkldnn_rnn_layer``): the input GEMM with its input's
  class, and one ``[B, H] @ [H, G*H]`` recurrent GEMM per step: on the initial state as it is
  (zeros carry no events, as on the unfused path), then on the real-valued hidden state.

The unfused paths of these modules reach the counter as aten matmuls and are counted by those rules.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from spikeattn.opcount.rules import REAL, OpCount, Operand, _matmul_count

aten = torch.ops.aten
# oneDNN's RNN modes (ATen's rnn mode numbering) -> gates per hidden unit
_RNN_GATES = {0: 1, 1: 1, 2: 4, 3: 3}


def _real(like: torch.Tensor, shape, ctx) -> torch.Tensor:
    """A stand-in for a real-valued intermediate (probabilities, hidden state): known real, never scanned."""
    t = like.new_empty(shape)
    ctx.remember(t, Operand(REAL))
    return t


def attention_count(q, k, v, ctx) -> OpCount:
    """``softmax(Q K^T) V`` for ``q [..., L, E]``, ``k [..., S, E]``, ``v [..., S, Ev]`` (grouped K/V heads expanded)."""
    if k.dim() >= 3 and k.shape[-3] != q.shape[-3]:  # grouped-query attention: each K/V head serves several
        rep = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(rep, dim=-3), v.repeat_interleave(rep, dim=-3)
    q, k, v = (t.expand(*q.shape[:-2], *t.shape[-2:]) for t in (q, k, v))
    p = _real(q, (*q.shape[:-1], k.shape[-2]), ctx)
    return _matmul_count(q, k.transpose(-2, -1), ctx) + _matmul_count(p, v, ctx)


def sdpa_rule(args, kwargs, out, ctx) -> OpCount:
    return attention_count(args[0], args[1], args[2], ctx)


def native_mha_rule(args, kwargs, out, ctx) -> OpCount:
    """``_native_multi_head_attention(query, key, value, E, heads, qkv_weight, qkv_bias, proj_weight, ...)``."""
    query, key, value, embed, heads, w_qkv, b_qkv, w_proj = args[:8]
    d = embed // heads
    count = OpCount()
    projected = []
    for i, x in enumerate((query, key, value)):  # x [B, L, E]
        w, b = w_qkv[i * embed:(i + 1) * embed], b_qkv[i * embed:(i + 1) * embed]
        count = count + _matmul_count(x.reshape(-1, embed), w.t(), ctx)
        y = F.linear(x, w, b)                                          # (B, L, E)
        projected.append(y.unflatten(-1, (heads, d)).transpose(-3, -2))  # (B, H, L, d)
    count = count + attention_count(*projected, ctx)
    merged = _real(query, (math.prod(query.shape[:-1]), embed), ctx)     # (B*L, E) attention output
    return count + _matmul_count(merged, w_proj.t(), ctx)


def rnn_layer_rule(args, kwargs, out, ctx) -> OpCount:
    """``mkldnn_rnn_layer(input, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, batch_sizes, mode, H, ...)``."""
    x, w_ih, w_hh, h0, mode, hidden, batch_first = args[0], args[1], args[2], args[5], args[9], args[10], args[14]
    if mode not in _RNN_GATES:
        return None
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    count = _matmul_count(x.reshape(-1, x.shape[-1]), w_ih.t(), ctx)
    if steps == 0:
        return count
    # Step 1 reads the initial state as it is (zeros: no events, as on the unfused path); later steps
    # read a real-valued hidden state.
    count = count + _matmul_count(h0.reshape(batch, hidden), w_hh.t(), ctx)
    step = _matmul_count(_real(x, (batch, hidden), ctx), w_hh.t(), ctx)
    return count + OpCount(**{k: v * (steps - 1) for k, v in step.as_dict().items()})


NN_RULES = {
    aten._scaled_dot_product_flash_attention_for_cpu.default: sdpa_rule,
    aten._scaled_dot_product_flash_attention.default: sdpa_rule,
    aten._scaled_dot_product_efficient_attention.default: sdpa_rule,
    aten._scaled_dot_product_cudnn_attention.default: sdpa_rule,
    aten._native_multi_head_attention.default: native_mha_rule,
    aten.mkldnn_rnn_layer.default: rnn_layer_rule,
}
