"""Spikformer -> graph: the SPS or SCS stem, SSA / SDSA attention with residual adds, and the linear head.

The feed-forward walker of ``graph.py`` handles chains; a Spikformer branches (the SPS position
branch, two residuals per block, Q/K/V from one LIF), so it gets its own builder, one small
function per layer type (``LAYERS``). Node names are module paths, so the neurons' nodes line
up with torch forward hooks (``attn_lif`` fires token-major ``[N, C]`` per sample, as in torch).

BatchNorms are folded first (``fold_spikformer``); compare Lava with torch running that folded
copy for bit-equal spikes (folding changes fp32 rounding).
"""

from __future__ import annotations

import torch
from torch import nn

from spikeattn.export.graph import NotExportable, _input_unit, _neuron, fold_batchnorm, fold_into, foldable
from spikeattn.layers.attention import SpikeDrivenSelfAttention, SpikingSelfAttention
from spikeattn.layers.embed import SCS, SPS, ConvBNLIF
from spikeattn.layers.mlp import SpikformerBlock, SpikingMLP
from spikeattn.layers.seq import LinearBN
from spikeattn.models.spikformer import Spikformer

__all__ = ["fold_spikformer", "spikformer_graph"]


def fold_spikformer(model: Spikformer) -> Spikformer:
    """A copy with every eval-mode BatchNorm folded into its Linear/Conv2d (float64, rounded once)."""
    model = fold_batchnorm(model)            # PerFrame(Conv2d, BatchNorm2d) is a Sequential
    for m in model.modules():
        if isinstance(m, LinearBN) and foldable(m.bn):
            fold_into(m.linear, m.bn)
            m.bn = nn.Identity()
    return model


class _Builder:
    """Collects nodes (in run order) and float32 arrays; ``problems`` for NotExportable."""

    def __init__(self):
        self.nodes, self.arrays, self.problems = [], {}, []

    def add(self, name, op, inputs, shape, attrs=None, **tensors):
        params = {}
        for role, t in tensors.items():
            if t is not None:
                self.arrays[f"{name}.{role}"] = t.detach().to(torch.float32).cpu().numpy()
                params[role] = f"{name}.{role}"
        self.nodes.append({"name": name, "op": op, "inputs": list(inputs), "shape": [int(s) for s in shape],
                           "attrs": attrs or {}, "params": params})
        return name, tuple(shape)

    def neuron(self, path, m, src):
        try:
            return self.add(path, "lif", [src[0]], src[1], _neuron(m, False)[1])
        except ValueError as e:
            self.problems.append((path, type(m).__name__, str(e)))
            return path, src[1]

    def linear(self, path, m: LinearBN, src):
        if not isinstance(m.bn, nn.Identity):
            self.problems.append((f"{path}.bn", type(m.bn).__name__, "BatchNorm must be in eval mode to fold"))
        lin = m.linear
        return self.add(f"{path}.linear", "linear", [src[0]], (*src[1][:-1], lin.out_features),
                        weight=lin.weight, bias=lin.bias)


def _conv_bn_lif(b: _Builder, path: str, m: ConvBNLIF, src):
    conv, rest = m.conv[0], list(m.conv)[1:]
    if any(not isinstance(r, nn.Identity) for r in rest):
        b.problems.append((f"{path}.conv.1", type(rest[0]).__name__, "BatchNorm must be in eval mode to fold"))
    if conv.groups != 1 or conv.dilation != (1, 1) or isinstance(conv.padding, str):
        b.problems.append((f"{path}.conv.0", "Conv2d", "only groups=1, dilation=1, numeric padding"))
    c, h, w = src[1]
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    shape = (conv.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    x = b.add(f"{path}.conv.0", "conv2d", [src[0]], shape, {"stride": [sh, sw], "padding": [ph, pw]},
              weight=conv.weight, bias=conv.bias)
    x = b.neuron(f"{path}.lif", m.lif, x)
    if isinstance(m.pool, nn.Identity):
        return x
    pool = m.pool[0]
    k, s, p = (pool.kernel_size, pool.stride, pool.padding)
    c, h, w = x[1]
    return b.add(f"{path}.pool.0", "maxpool2d", [x[0]], (c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1),
                 {"kernel": [k, k], "stride": [s, s], "padding": [p, p]})


def _sps(b: _Builder, path: str, m: SPS | SCS, src):
    x = src
    for i, stage in enumerate(m.stages):
        x = _conv_bn_lif(b, f"{path}.stages.{i}", stage, x)
        for j, extra in enumerate(getattr(m, "extras", [[]] * 4)[i]):   # SCS: residual Conv-BN-LIF layers
            r = _conv_bn_lif(b, f"{path}.extras.{i}.{j}", extra, x)
            x = b.add(f"{path}.extras.{i}.{j}.add", "add", [x[0], r[0]], x[1])
    pos = _conv_bn_lif(b, f"{path}.rpe", m.rpe, x)
    y = b.add(f"{path}.add", "add", [x[0], pos[0]], x[1])
    c, h, w = y[1]
    return b.add(f"{path}.tokens", "to_tokens", [y[0]], (h * w, c))


def _ssa(b: _Builder, path: str, m: SpikingSelfAttention, src):
    n, c = src[1]
    qkv = b.neuron(f"{path}.qkv_lif", m.qkv_lif, b.linear(f"{path}.qkv", m.qkv, src))
    a = b.add(f"{path}.ssa", "ssa", [qkv[0]], (m.heads, n, c // m.heads), {"heads": m.heads, "scale": m.scale})
    a = b.add(f"{path}.merge", "merge_heads", [a[0]], (n, c))   # torch fires attn_lif token-major
    a = b.neuron(f"{path}.attn_lif", m.attn_lif, a)
    return b.neuron(f"{path}.proj_lif", m.proj_lif, b.linear(f"{path}.proj", m.proj, a))


def _sdsa(b: _Builder, path: str, m: SpikeDrivenSelfAttention, src):
    n, c = src[1]
    qkv = b.neuron(f"{path}.qkv_lif", m.qkv_lif, b.linear(f"{path}.qkv", m.qkv, src))
    kv = b.neuron(f"{path}.kv_lif", m.kv_lif, b.add(f"{path}.kv", "sdsa_kv", [qkv[0]], (1, c)))
    y = b.add(f"{path}.mask", "sdsa_mask", [qkv[0], kv[0]], (n, c))
    return b.neuron(f"{path}.proj_lif", m.proj_lif, b.linear(f"{path}.proj", m.proj, y))


def _mlp(b: _Builder, path: str, m: SpikingMLP, src):
    h = b.neuron(f"{path}.lif1", m.lif1, b.linear(f"{path}.fc1", m.fc1, src))
    return b.neuron(f"{path}.lif2", m.lif2, b.linear(f"{path}.fc2", m.fc2, h))


def _block(b: _Builder, path: str, m: SpikformerBlock, src):
    a = _layer(b, f"{path}.attn", m.attn, src)
    x = b.add(f"{path}.add1", "add", [src[0], a[0]], src[1])   # the runtime aligns the two delays
    y = _layer(b, f"{path}.mlp", m.mlp, x)
    return b.add(f"{path}.add2", "add", [x[0], y[0]], x[1])


LAYERS = {SPS: _sps, SCS: _sps, SpikingSelfAttention: _ssa, SpikeDrivenSelfAttention: _sdsa,
          SpikingMLP: _mlp, SpikformerBlock: _block}


def _layer(b: _Builder, path: str, m: nn.Module, src):
    fn = LAYERS.get(type(m))
    if fn is None:
        b.problems.append((path, type(m).__name__, "no converter for this layer type inside a Spikformer"))
        return src
    return fn(b, path, m, src)


def spikformer_graph(model: Spikformer, example_input: torch.Tensor) -> tuple[dict, dict]:
    """``(graph, arrays)`` of a BN-folded eval-mode Spikformer; output: per-step logits ``[classes]``.

    Args:
        model: the result of ``fold_spikformer``.
        example_input: images ``[T, B, C, H, W]``, or ``[B, C, H, W]`` (repeated ``config.T`` times).

    The logits of torch's forward are the output's mean over T.
    """
    if isinstance(example_input, torch.Tensor) and example_input.dim() == 4:
        example_input = example_input.unsqueeze(0).expand(model.config.T, *example_input.shape)  # (T, B, C, H, W)
    if not isinstance(example_input, torch.Tensor) or example_input.dim() != 5:
        raise ValueError(f"example_input must be images [T, B, C, H, W] or [B, C, H, W], "
                         f"got {getattr(example_input, 'shape', example_input)!r}")
    b = _Builder()
    x = b.add("input", "input", [], example_input.shape[2:])
    x = _layer(b, "embed", model.embed, x)
    for i, block in enumerate(model.blocks):
        x = _layer(b, f"blocks.{i}", block, x)
    b.add("head", "readout", [x[0]], (model.head.out_features,), weight=model.head.weight, bias=model.head.bias)
    if b.problems:
        raise NotExportable(b.problems)
    return {"nodes": b.nodes, "output": "head", "input_unit": _input_unit(example_input)}, b.arrays
