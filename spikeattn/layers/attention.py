r"""Spiking self-attention: Spikformer's SSA and the Spike-driven Transformer's SDSA.

Both take and return spike tokens ``[T, B, N, C]`` (time-major).

SSA has no softmax, so with 0/1 operands

.. math::
    (Q K^\top) V = Q (K^\top V)

holds exactly (every partial sum is an integer, exact in fp32 below :math:`2^{24}`), and the
layer picks the cheaper order per call: :math:`2N^2d` or :math:`2Nd^2` multiply-adds per head.
For fp32 on the CPU the layer runs the fused kernel of ``spikeattn.ops.ssa`` instead (same
bits: integer counts; Q/K/V read token-major, no head-permuted copies, 1 bit per spike saved).
The attention LIF fires on token-major ``[T, B, N, C]`` either way.
"""

from __future__ import annotations

import torch
from torch import nn

from spikeattn.layers.seq import LinearBN, NeuronSpec, check_tokens
from spikeattn.ops import ssa as ssa_ops

__all__ = ["SpikingSelfAttention", "SpikeDrivenSelfAttention", "ssa_order", "spike_attention"]

ORDERS = ("qk_first", "kv_first")


def ssa_order(n_tokens: int, head_dim: int) -> str:
    """The cheaper exact association: ``qk_first`` costs ``2 N^2 d``, ``kv_first`` ``2 N d^2``."""
    return "qk_first" if n_tokens < head_dim else "kv_first"


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    # Counts up to N*d must stay exact: bf16/fp16 hold integers only up to 256/2048.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _product(q, k, v, order):
    if order == "qk_first":
        return (q @ k.transpose(-2, -1)) @ v   # (.., N, N) @ (.., N, d)
    return q @ (k.transpose(-2, -1) @ v)       # (.., N, d) @ (.., d, d)


class _SpikeAttention(torch.autograd.Function):
    """``Q K^T V * scale`` on 0/1 operands stacked as ``qkv [3, ..., N, d]``.

    Saves ``qkv`` as uint8 (1 byte per spike), and the middle product (``Q K^T`` or ``K^T V``)
    as uint8 when its counts fit (else backward recomputes it); returns one gradient for the
    stacked tensor, so autograd never zero-fills and scatters three slice gradients.
    """

    @staticmethod
    def forward(ctx, qkv, scale, order):
        acc = _acc_dtype(qkv.dtype)
        # One dense copy (qkv usually arrives as a head-permuted view): the matmuls below and the
        # uint8 copy saved for backward then read contiguous memory instead of each copying again.
        in_dtype = qkv.dtype
        qkv = qkv.to(acc).contiguous()
        q, k, v = qkv.unbind(0)
        with torch.autocast(qkv.device.type, enabled=False):  # bf16 matmuls would round counts > 256
            if order == "qk_first":
                middle = q @ k.transpose(-2, -1)                      # (.., N, N), counts <= d
                out = (middle @ v) * scale
            else:
                middle = k.transpose(-2, -1) @ v                      # (.., d, d), counts <= N
                out = (q @ middle) * scale
        # The middle product's counts fit in uint8 (1 byte each) up to 255: kept for backward
        # instead of recomputed; beyond, recomputed.
        bound = q.shape[-1] if order == "qk_first" else q.shape[-2]
        middle = middle.to(torch.uint8) if bound <= 255 else qkv.new_empty(0, dtype=torch.uint8)
        ctx.scale, ctx.order, ctx.acc, ctx.in_dtype = scale, order, acc, in_dtype
        ctx.save_for_backward(qkv.to(torch.uint8), middle)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        qkv, middle = ctx.saved_tensors
        q, k, v = qkv.to(ctx.acc).unbind(0)
        g = grad_out.to(ctx.acc) * ctx.scale
        grad = torch.empty(qkv.shape, dtype=ctx.acc, device=qkv.device)
        grad_q, grad_k, grad_v = grad.unbind(0)
        if ctx.order == "qk_first":
            a = middle.to(ctx.acc) if middle.numel() else q @ k.transpose(-2, -1)   # (.., N, N)
            grad_a = g @ v.transpose(-2, -1)
            torch.matmul(grad_a, k, out=grad_q)
            torch.matmul(grad_a.transpose(-2, -1), q, out=grad_k)
            torch.matmul(a.transpose(-2, -1), g, out=grad_v)
        else:
            kv = middle.to(ctx.acc) if middle.numel() else k.transpose(-2, -1) @ v  # (.., d, d)
            grad_kv = q.transpose(-2, -1) @ g
            torch.matmul(g, kv.transpose(-2, -1), out=grad_q)
            torch.matmul(v, grad_kv.transpose(-2, -1), out=grad_k)
            torch.matmul(k, grad_kv, out=grad_v)
        return grad.to(ctx.in_dtype), None, None


def spike_attention(qkv: torch.Tensor, scale: float, order: str = "auto") -> torch.Tensor:
    r"""Softmax-free attention :math:`Q K^\top V \cdot s` on spikes stacked as ``qkv [3, ..., N, d]``.

    Args:
        qkv: 0/1 tensor, ``qkv[0], qkv[1], qkv[2]`` = Q, K, V, each ``[..., N, d]``. Other values
            would be corrupted by the uint8 storage for backward.
        scale: multiplies the product.
        order: ``auto`` (cheaper of the two), ``qk_first`` or ``kv_first``; all give equal outputs.

    Returns:
        ``[..., N, d]`` in fp32 (fp64 for fp64 input): integer counts times ``scale``.
    """
    if qkv.dim() < 3 or qkv.shape[0] != 3:
        raise ValueError(f"qkv must be [3, ..., N, d] (Q, K, V stacked), got shape {tuple(qkv.shape)}")
    if order == "auto":
        order = ssa_order(qkv.shape[-2], qkv.shape[-1])
    if order not in ORDERS:
        raise ValueError(f"order must be 'auto' or one of {ORDERS}, got {order!r}")
    return _SpikeAttention.apply(qkv, float(scale), order)


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
        check_tokens(x, self.dim)
        qkv = self.qkv_lif(self.qkv(x))                      # (T, B, N, 3C)
        a = self.attn_lif(_attend(qkv, self.heads, self.scale, self.order)).to(x.dtype)  # (T, B, N, C)
        return self.proj_lif(self.proj(a, is_spikes=True))

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
        check_tokens(x, self.dim)
        q, k, v = self.qkv_lif(self.qkv(x)).chunk(3, dim=-1)        # 3 x (T, B, N, C)
        # counts up to N: summed in fp32 (bf16 holds integers exactly only up to 256)
        kv = self.kv_lif((k * v).sum(dim=2, keepdim=True, dtype=_acc_dtype(x.dtype))).to(q.dtype)  # (T, B, 1, C)
        return self.proj_lif(self.proj(q * kv, is_spikes=True))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}"


def _attend(qkv: torch.Tensor, heads: int, scale: float, order: str) -> torch.Tensor:
    """SSA core ``[T, B, N, 3C] -> [T, B, N, C]`` fp32; the fused CPU kernel where it runs (same bits)."""
    if ssa_ops.resolve_backend("auto", qkv) == "cpu":
        return ssa_ops.ssa_tokens(qkv, heads, scale, backend="cpu")  # no permuted copies, 1 bit per spike saved
    t, b, n, c3 = qkv.shape
    c = c3 // 3
    qkv = qkv.view(t, b, n, 3, heads, c // heads).permute(3, 0, 1, 4, 2, 5)  # (3, T, B, H, N, d)
    return spike_attention(qkv, scale, order).transpose(2, 3).reshape(t, b, n, c)


def _check_dims(dim, heads):
    if not (isinstance(dim, int) and dim >= 1):
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if not (isinstance(heads, int) and heads >= 1) or dim % heads:
        raise ValueError(f"heads must be a positive int dividing dim={dim}, got {heads!r}")
