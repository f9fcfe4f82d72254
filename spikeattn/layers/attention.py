r"""Spiking self-attention: Spikformer's SSA and the Spike-driven Transformer's SDSA.

Both take and return spike tokens ``[T, B, N, C]`` (time-major).

SSA has no softmax, so with 0/1 operands

.. math::
    (Q K^\top) V = Q (K^\top V)

holds exactly (every partial sum is an integer, exact in fp32 below :math:`2^{24}`), and the
op (``spikeattn.ops.ssa.ssa_tokens``) picks the cheaper order per call: :math:`2N^2d` or
:math:`2Nd^2` multiply-adds per head, or, for fp32 on the CPU, its fused kernel (same bits:
integer counts; no head-permuted copies, 1 bit per spike saved). The attention LIF fires on
token-major ``[T, B, N, C]`` either way.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings

import torch
from torch import nn

from spikeattn._validate import check_ints
from spikeattn.layers.seq import LinearBN, NeuronSpec, check_tokens
from spikeattn.ops.lif import lif_multi_step, state_dtype
from spikeattn.ops.ssa import ORDERS, acc_dtype, ssa_order, ssa_tokens

__all__ = ["SpikingSelfAttention", "SpikeDrivenSelfAttention", "ssa_order", "spike_attention", "token_sums_scaled"]

# The factor on every attention's token sums in the current context (thread, task): 1 outside
# ``token_sums_scaled``. A context variable, not module state, so that concurrent calls cannot see
# each other's factor.
_TOKEN_FACTOR: contextvars.ContextVar[float] = contextvars.ContextVar("spikeattn_token_factor", default=1.0)


@contextlib.contextmanager
def token_sums_scaled(factor: float):
    """Within the block (in this thread or task only), SSA and SDSA scale their sums over tokens by ``factor``.

    Neither SSA (no softmax) nor SDSA normalises over tokens: their integer counts grow with the
    number of tokens summed. A model run on a fraction of its tokens (MAE pretraining: N_visible of
    N) scales them by ``N / N_visible`` so that its attention neurons see the counts of the whole
    input. SSA's ``scale`` is multiplied; SDSA's threshold on ``sum_n K*V`` is divided (the same
    comparison). Nothing is written on the modules.
    """
    token = _TOKEN_FACTOR.set(float(factor))
    try:
        yield
    finally:
        _TOKEN_FACTOR.reset(token)

def spike_attention(qkv: torch.Tensor, scale: float, order: str = "auto") -> torch.Tensor:
    """Deprecated: ``ssa_tokens`` (``spikeattn.ops.ssa``) is the op, on token-major ``[..., N, 3C]``.

    The SSA core on Q, K, V stacked as ``qkv [3, ..., N, d]`` (one head per leading slice), run by
    the ``torch`` backend in ``order``; returns ``[..., N, d]``.
    """
    warnings.warn("spike_attention(qkv [3, ..., N, d]) is deprecated: use spikeattn.ops.ssa.ssa_tokens "
                  "on token-major [..., N, 3C]", DeprecationWarning, stacklevel=2)
    if qkv.dim() < 3 or qkv.shape[0] != 3:
        raise ValueError(f"qkv must be [3, ..., N, d] (Q, K, V stacked), got shape {tuple(qkv.shape)}")
    tokens = qkv.movedim(0, -2)                                        # (..., N, 3, d)
    return ssa_tokens(tokens.reshape(*tokens.shape[:-2], -1), 1, scale, order=order, backend="torch")


class SpikingSelfAttention(nn.Module):
    r"""Spikformer SSA: ``[T, B, N, C] -> [T, B, N, C]`` spikes.

    .. math::
        Q, K, V = \mathrm{LIF}(\mathrm{BN}(X W_{q,k,v})),\quad
        Y = \mathrm{LIF}(\mathrm{BN}(\mathrm{LIF}_{0.5}(Q K^\top V \cdot s) W_o))

    Args:
        dim: channels C (divisible by ``heads``).
        heads: attention heads; head dim ``d = C / heads``.
        scale: ``s``, multiplies the integer attention counts (Spikformer: 0.125).
        attn_v_th: threshold of the attention LIF (Spikformer: 0.5).
        neuron: LIF settings (``NeuronSpec``) for every neuron here.
        order: ``auto`` picks the cheaper exact association per call; or force ``qk_first`` / ``kv_first``
            (the torch path; the fused CPU kernel gives the same bits for every order).

    Example:
        >>> ssa = SpikingSelfAttention(64, heads=4)
        >>> y = ssa((torch.rand(2, 3, 16, 64) < 0.3).float())   # [T=2, B=3, N=16, C=64]
    """

    def __init__(self, dim: int, heads: int, scale: float = 0.125, attn_v_th: float = 0.5,
                 neuron: NeuronSpec | None = None, order: str = "auto"):
        super().__init__()
        _check_dims(dim, heads)
        if order not in ("auto", *ORDERS):
            raise ValueError(f"order must be 'auto' or one of {ORDERS}, got {order!r}")
        neuron = neuron or NeuronSpec()
        self.dim, self.heads, self.scale, self.order = dim, heads, float(scale), order
        self.qkv = LinearBN(dim, 3 * dim)  # Q, K and V in one GEMM (same parameters as three)
        self.qkv_lif = neuron.make()
        self.attn_lif = neuron.make(v_th=attn_v_th)
        self.proj = LinearBN(dim, dim)
        self.proj_lif = neuron.make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(x, self.dim, module=self)
        qkv = self.qkv.fire(x, self.qkv_lif)                 # (T, B, N, 3C)
        scale = self.scale * _TOKEN_FACTOR.get()
        a = self.attn_lif(ssa_tokens(qkv, self.heads, scale, self.order)).to(x.dtype)  # (T, B, N, C)
        return self.proj.fire(a, self.proj_lif, is_spikes=True)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, scale={self.scale}, order={self.order!r}"


class SpikeDrivenSelfAttention(nn.Module):
    r"""Spike-driven Transformer SDSA: ``[T, B, N, C] -> [T, B, N, C]`` spikes, linear in N.

    .. math::
        Q, K, V = \mathrm{LIF}(\mathrm{BN}(X W_{q,k,v})),\quad
        Y = \mathrm{LIF}(\mathrm{BN}((Q \odot \mathrm{LIF}_{0.5}(\textstyle\sum_n K \odot V)) W_o))

    Only masks and additions; the channel-wise sum over tokens makes heads irrelevant to the
    maths, so ``heads`` is only checked (C divisible) for a drop-in swap with SSA.
    The output projection ends in a LIF (the paper feeds membranes to the next block instead)
    so that both attention kinds return spikes.
    """

    def __init__(self, dim: int, heads: int, neuron: NeuronSpec | None = None, kv_v_th: float = 0.5):
        super().__init__()
        _check_dims(dim, heads)
        neuron = neuron or NeuronSpec()
        self.dim, self.heads = dim, heads
        self.qkv = LinearBN(dim, 3 * dim)
        self.qkv_lif = neuron.make()
        self.kv_lif = neuron.make(v_th=kv_v_th)
        self.proj = LinearBN(dim, dim)
        self.proj_lif = neuron.make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tokens(x, self.dim, module=self)
        q, k, v = self.qkv.fire(x, self.qkv_lif).chunk(3, dim=-1)   # 3 x (T, B, N, C)
        # counts up to N: summed in fp32 (bf16 holds integers exactly only up to 256)
        kv = self._kv_fire((k * v).sum(dim=2, keepdim=True, dtype=acc_dtype(x.dtype))).to(q.dtype)  # (T, B, 1, C)
        return self.proj.fire(q * kv, self.proj_lif, is_spikes=True)

    def _kv_fire(self, kv_sum: torch.Tensor) -> torch.Tensor:
        factor = _TOKEN_FACTOR.get()
        if factor == 1.0:
            return self.kv_lif(kv_sum)
        # the threshold over the factor, for this call only (token_sums_scaled)
        p = self.kv_lif.parameters_for(state_dtype(kv_sum.dtype))
        spikes, _ = lif_multi_step(kv_sum, None, p._replace(v_th=self.kv_lif.v_th / factor), self.kv_lif.backend)
        return spikes

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}"


def _check_dims(dim, heads):
    check_ints(dim=dim, heads=heads)
    if dim % heads:
        raise ValueError(f"heads must be a positive int dividing dim={dim}, got {heads!r}")
