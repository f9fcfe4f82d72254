"""SpikeGPT's spiking RWKV layers: time mix (SRWKV), channel mix (SRFFN) and the block around them.

Tensors are token-major ``[B, T, C]`` (a language model's batch of sequences). Each layer runs in two
modes that compute the same thing: ``forward`` over a whole sequence (training) and ``step`` over one
token ``[B, C]`` with an explicit state (generation, O(1) per token).

The LIF neurons after each sub-layer treat the token axis as their time axis, as in SpikeGPT (which
permutes [B, T, C] to [T, B, C] around its multi-step LIF; ours step through [B, T, C] in place,
``batch_first``): the membrane of channel c carries from token t to token t+1. In ``step`` the
membrane is part of the state, so one token at a time gives the same spikes as the whole sequence.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from spikeattn import surrogate as sg
from spikeattn._validate import check_ints
from spikeattn.layers.checks import check_input
from spikeattn.layers.seq import watched
from spikeattn.neuron import LIF
from spikeattn.ops._dtypes import state_dtype
from spikeattn.ops.lif.residual import lif_residual
from spikeattn.ops.relu_square import relu_square
from spikeattn.ops.sigmoid_gate import sigmoid_gate
from spikeattn.ops import srffn as _srffn
from spikeattn.ops import srwkv as _srwkv
from spikeattn.ops.token_mix import mix, token_mix, token_shift
from spikeattn.ops.wkv import WKVState, wkv, wkv_step

__all__ = ["SpikingTimeMix", "SpikingChannelMix", "SpikeGPTBlock", "TimeMixState", "BlockState", "token_shift"]


def _channel_ramp(dim: int) -> torch.Tensor:
    return torch.arange(dim, dtype=torch.float32) / dim  # i / C, as RWKV-4's "fancy time_mix"


def _check_depth(dim: int, layer_id: int, n_layers: int) -> None:
    check_ints(dim=dim, n_layers=n_layers)
    if not (isinstance(layer_id, int) and 0 <= layer_id < n_layers):
        raise ValueError(f"need 0 <= layer_id < n_layers, got layer_id={layer_id!r}, n_layers={n_layers!r}")


def _plain_linears(layers) -> bool:
    """Bias-free ``nn.Linear`` layers (no subclass) that no forward hook watches: a fused core that uses their
    weights directly computes what calling them would."""
    return all(type(layer) is nn.Linear and layer.bias is None for layer in layers) and not watched(*layers)


class TimeMixState(NamedTuple):
    """State of ``SpikingTimeMix.step``: the previous token's input ``[B, C]`` and the WKV sums."""

    shift: torch.Tensor
    wkv: WKVState


class SpikingTimeMix(nn.Module):
    r"""SRWKV: token shift, learned mixes, ``Wo(sigmoid(r) * WKV(k, v))``.

    .. math::
        x^{k,v,r} = \mu_{k,v,r} x_t + (1 - \mu_{k,v,r}) x_{t-1},\quad
        \mathrm{out} = W_o(\sigma(W_r x^r) \odot \mathrm{WKV}(W_k x^k, W_v x^v))

    Initialised by depth as RWKV-4 / SpikeGPT: the decay ramps over channels from fast to slow (slower
    in deeper layers), ``time_first`` is log(0.3) with a zigzag, mixes ramp over channels.

    Args:
        dim: embedding size C.
        layer_id, n_layers: this layer's depth, for the initialisation schedules.
        wkv_backend: backend of ``spikeattn.ops.wkv.wkv`` in ``forward``.
    """

    def __init__(self, dim: int, layer_id: int, n_layers: int, wkv_backend: str = "auto"):
        super().__init__()
        _check_depth(dim, layer_id, n_layers)
        self.wkv_backend = wkv_backend
        ratio_0_to_1 = layer_id / (n_layers - 1) if n_layers > 1 else 0.0
        ratio_1_to_0 = 1.0 - layer_id / n_layers
        h = torch.arange(dim, dtype=torch.float32) / max(dim - 1, 1)
        self.time_decay = nn.Parameter(-5 + 8 * h ** (0.7 + 1.3 * ratio_0_to_1))  # w = exp(time_decay)
        zigzag = ((torch.arange(dim) + 1) % 3 - 1).float() * 0.5
        self.time_first = nn.Parameter(torch.full((dim,), math.log(0.3)) + zigzag)
        ramp = _channel_ramp(dim)
        self.time_mix_k = nn.Parameter(ramp ** ratio_1_to_0)
        self.time_mix_v = nn.Parameter(ramp ** ratio_1_to_0 + 0.3 * ratio_0_to_1)
        self.time_mix_r = nn.Parameter(ramp ** (0.5 * ratio_1_to_0))
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.output = nn.Linear(dim, dim, bias=False)
        for layer in (self.key, self.receptance, self.output):  # RWKV-4: these start at zero
            layer.zero_init = True

    def _project(self, xk, xv, xr):
        return self.key(xk), self.value(xv), self.receptance(xr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, C] -> [B, T, C]``, the whole sequence from the empty state."""
        check_input(x, self, "B T C", C=self.key.in_features)
        mixes = torch.stack((self.time_mix_k, self.time_mix_v, self.time_mix_r))
        xk, xv, xr = token_mix(x, mixes)
        w = torch.exp(self.time_decay)
        layers = (self.key, self.value, self.receptance, self.output)
        weights = [layer.weight for layer in layers]
        # The fused core (ops.srwkv: the bits of the ops below with WKV's CPU kernel, its pointwise steps in
        # place) where nothing can tell: WKV on auto/cpu, plain bias-free nn.Linear layers no hook watches.
        if (self.wkv_backend in ("auto", "cpu") and _plain_linears(layers)
                and _srwkv.resolve_backend("auto", xk, xv, xr, w, self.time_first, *weights) == "cpu"):
            return _srwkv.srwkv(xk, xv, xr, w, self.time_first, *weights, backend="cpu")
        k, v, r = self._project(xk, xv, xr)
        y = wkv(w, self.time_first, k, v, backend=self.wkv_backend)
        return self.output(sigmoid_gate(r, y))

    def step(self, x: torch.Tensor, state: TimeMixState | None) -> tuple[torch.Tensor, TimeMixState]:
        """One token ``x [B, C] -> ([B, C], state)``; ``state=None`` starts a sequence."""
        if state is None:
            state = TimeMixState(torch.zeros_like(x), WKVState.zeros(x.shape, state_dtype(x.dtype), x.device))
        xx = state.shift
        k, v, r = self._project(*(mix(x, xx, m) for m in (self.time_mix_k, self.time_mix_v, self.time_mix_r)))
        sd = state_dtype(x.dtype)
        y, wkv_state = wkv_step(torch.exp(self.time_decay).to(sd), self.time_first.to(sd), k.to(sd), v.to(sd), state.wkv)
        return self.output(sigmoid_gate(r, y.to(x.dtype))), TimeMixState(x, wkv_state)


class SpikingChannelMix(nn.Module):
    r"""SRFFN: token shift, ``sigmoid(W_r x^r) * W_v(ReLU(W_k x^k)^2)``, hidden size 4C.

    Args:
        dim: embedding size C.
        layer_id, n_layers: this layer's depth, for the mix schedule.
        hidden_mult: hidden size as a multiple of C (4 in SpikeGPT).
    """

    def __init__(self, dim: int, layer_id: int, n_layers: int, hidden_mult: int = 4):
        super().__init__()
        _check_depth(dim, layer_id, n_layers)
        ratio_1_to_0 = 1.0 - layer_id / n_layers
        ramp = _channel_ramp(dim)
        self.time_mix_k = nn.Parameter(ramp ** ratio_1_to_0)
        self.time_mix_r = nn.Parameter(ramp ** ratio_1_to_0)
        self.key = nn.Linear(dim, hidden_mult * dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(hidden_mult * dim, dim, bias=False)
        for layer in (self.receptance, self.value):  # RWKV-4: these start at zero
            layer.zero_init = True

    def _ffn(self, xk, xr):
        k = relu_square(self.key(xk))
        return sigmoid_gate(self.receptance(xr), self.value(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, C] -> [B, T, C]``."""
        check_input(x, self, "B T C", C=self.key.in_features)
        xk, xr = token_mix(x, torch.stack((self.time_mix_k, self.time_mix_r)))
        layers = (self.key, self.receptance, self.value)
        weights = [layer.weight for layer in layers]
        # The fused core (ops.srffn: the same bits, its pointwise steps in place) where nothing can tell:
        # plain bias-free nn.Linear layers that no hook watches.
        if _plain_linears(layers) and _srffn.resolve_backend("auto", xk, xr, *weights) == "cpu":
            return _srffn.srffn(xk, xr, *weights, backend="cpu")
        return self._ffn(xk, xr)

    def step(self, x: torch.Tensor, shift: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One token ``x [B, C] -> ([B, C], x)``: the state is the previous token's input."""
        xx = torch.zeros_like(x) if shift is None else shift
        return self._ffn(mix(x, xx, self.time_mix_k), mix(x, xx, self.time_mix_r)), x


class BlockState(NamedTuple):
    """State of ``SpikeGPTBlock.step``: time mix, channel mix shift, and the two LIF membranes ``[B, C]``."""

    att: TimeMixState
    ffn_shift: torch.Tensor
    v_att: torch.Tensor
    v_ffn: torch.Tensor


def spikegpt_lif(backend: str = "auto") -> LIF:
    """SpikeGPT's neuron: LIF, tau 2, threshold 1, hard reset to 0, ATan surrogate; on ``[B, T, C]`` with the
    tokens as its time steps (batch_first), stateless."""
    return LIF(tau=2.0, v_th=1.0, v_reset=0.0, surrogate=sg.ATan(2.0), backend=backend, batch_first=True,
               stateful=False)


class SpikeGPTBlock(nn.Module):
    """``x = x + LIF(SRWKV(LN(x))); x = x + LIF(SRFFN(LN(x)))`` on ``[B, T, C]``.

    The residual stream stays real-valued; each sub-layer adds spikes to it.
    """

    def __init__(self, dim: int, layer_id: int, n_layers: int, wkv_backend: str = "auto", lif_backend: str = "auto"):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.att = SpikingTimeMix(dim, layer_id, n_layers, wkv_backend)
        self.ffn = SpikingChannelMix(dim, layer_id, n_layers)
        self.lif_att, self.lif_ffn = spikegpt_lif(lif_backend), spikegpt_lif(lif_backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C] -> [B, T, C]``; each LIF steps over the tokens of ``[B, T, C]`` in place, from rest."""
        x = self._add_spikes(self.lif_att, self.att(self.ln1(x)), x)
        return self._add_spikes(self.lif_ffn, self.ffn(self.ln2(x)), x)

    @staticmethod
    def _add_spikes(lif: LIF, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``x + lif(y)``, as one pass (``ops.lif.residual``: the same bits) unless a hook watches the neuron
        (it must then see the neuron run) or the neuron keeps its membrane."""
        if lif.stateful or watched(lif):
            return x + lif(y)
        return lif_residual(y, x, lif.parameters_for(state_dtype(y.dtype)), lif.backend, lif.batch_first)[0]

    @staticmethod
    def _spike_step(lif: LIF, y: torch.Tensor, v: torch.Tensor | None):
        s, v = lif.multi_step(y.unsqueeze(1), v)  # one token [B, 1, C], the membrane passed explicitly
        return s[:, 0], v

    def step(self, x: torch.Tensor, state: BlockState | None) -> tuple[torch.Tensor, BlockState]:
        """One token ``x [B, C] -> ([B, C], state)``; ``state=None`` starts a sequence."""
        att, shift, v_att, v_ffn = state if state is not None else (None, None, None, None)
        y, att = self.att.step(self.ln1(x), att)
        s, v_att = self._spike_step(self.lif_att, y, v_att)
        x = x + s
        y, shift = self.ffn.step(self.ln2(x), shift)
        s, v_ffn = self._spike_step(self.lif_ffn, y, v_ffn)
        return x + s, BlockState(att, shift, v_att, v_ffn)
