"""SpikeGPT: a spiking RWKV language model with a parallel (training) and a recurrent (generation) mode.

``forward(idx [B, T]) -> logits [B, T, V]`` runs every block over the whole sequence (WKV op + multi-step
LIF over tokens); ``step(tokens [B], state) -> (logits [B, V], state)`` runs one token with an explicit
state (per block: token shifts, WKV sums (a, b, p), LIF membranes), so generation is O(1) per token in
time and memory. Both modes compute the same function at any depth (tests/models/test_spikegpt.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from spikeattn import surrogate as sg
from spikeattn._validate import check_ints
from spikeattn.layers.rwkv import BlockState, SpikeGPTBlock

__all__ = ["SpikeGPT", "SpikeGPTConfig", "SpikeGPTState", "spikegpt", "PRESETS", "count_parameters"]


@dataclass(frozen=True)
class SpikeGPTConfig:
    vocab_size: int = 256           # bytes; 50277 for the GPT-NeoX BPE of the 216M model
    n_layers: int = 12
    dim: int = 512
    context: int = 1024             # training context (the parallel mode accepts any T)
    binary_embedding: bool = False  # Heaviside(embedding) with an ATan surrogate, as the paper's option
    tie_head: bool = False          # SpikeGPT / RWKV-4 keep the head untied
    wkv_backend: str = "auto"
    lif_backend: str = "auto"

    def __post_init__(self):
        check_ints(**{name: getattr(self, name) for name in ("vocab_size", "n_layers", "dim", "context")})


# Overrides of SpikeGPTConfig by preset name.
PRESETS: dict[str, dict] = {
    "spikegpt-45m": dict(n_layers=12, dim=512, context=1024, vocab_size=256),       # enwik8, character level
    "spikegpt-216m": dict(n_layers=18, dim=768, context=1024, vocab_size=50277),    # GPT-NeoX BPE
    "spikegpt-demo": dict(n_layers=4, dim=192, context=128, vocab_size=96),         # CPU minutes, Shakespeare
}


def count_parameters(config: SpikeGPTConfig) -> int:
    """Parameters of ``SpikeGPT(config)`` without building it."""
    d, V = config.dim, config.vocab_size
    per_block = 4 * d  # ln1, ln2
    per_block += 5 * d + 4 * d * d  # time mix: decay, first, 3 mixes; k, v, r, o
    per_block += 2 * d + 9 * d * d  # channel mix: 2 mixes; k (d x 4d), r, v (4d x d)
    embed_and_head = V * d * (1 if config.tie_head else 2)
    return config.n_layers * per_block + embed_and_head + 4 * d  # + ln0, ln_out


# The recurrent state of a whole model: one ``BlockState`` per block.
SpikeGPTState = tuple[BlockState, ...]


class SpikeGPT(nn.Module):
    """Embedding -> LN -> SpikeGPT blocks -> LN -> head. See the module docstring for the two modes."""

    def __init__(self, config: SpikeGPTConfig):
        super().__init__()
        self.config = config
        c = config
        self.emb = nn.Embedding(c.vocab_size, c.dim)
        self.ln0 = nn.LayerNorm(c.dim)  # SpikeGPT's extra LN on the embedding (its block 0)
        self.blocks = nn.ModuleList(
            SpikeGPTBlock(c.dim, i, c.n_layers, c.wkv_backend, c.lif_backend) for i in range(c.n_layers)
        )
        self.ln_out = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)
        if c.tie_head:
            self.head.weight = self.emb.weight
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """RWKV-4's init: small uniform embedding, zero for marked projections, orthogonal elsewhere."""
        if self.emb.weight.is_meta:
            return
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module is not self.head:
                out_f, in_f = module.weight.shape
                if getattr(module, "zero_init", False):
                    nn.init.zeros_(module.weight)
                else:
                    nn.init.orthogonal_(module.weight, gain=math.sqrt(max(out_f / in_f, 1.0)))
        if not self.config.tie_head:
            nn.init.orthogonal_(self.head.weight, gain=0.5 * math.sqrt(max(self.config.vocab_size / self.config.dim, 1.0)))

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)
        if self.config.binary_embedding:
            x = sg.ATan(2.0)(x)
        return self.ln0(x)

    def _check_idx(self, idx: torch.Tensor, dims: int, name: str) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.int64, torch.int32) or idx.dim() != dims:
            shape = "[B, T]" if dims == 2 else "[B]"
            raise ValueError(f"{name} must be an int64/int32 tensor {shape}, got {getattr(idx, 'dtype', type(idx))} "
                             f"of shape {tuple(getattr(idx, 'shape', ()))}")
        if 0 in idx.shape:
            shape = "[B, T]" if dims == 2 else "[B]"
            raise ValueError(f"{name} must be a non-empty {shape} (at least one sequence and one token), "
                             f"got shape {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            raise ValueError(f"{name} holds token ids outside [0, {self.config.vocab_size})")

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Parallel mode: ``idx [B, T] -> logits [B, T, vocab_size]``."""
        self._check_idx(idx, 2, "idx")
        x = self._embed(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_out(x))

    def step(self, tokens: torch.Tensor, state: SpikeGPTState | None = None) -> tuple[torch.Tensor, SpikeGPTState]:
        """Recurrent mode: one token per sequence ``tokens [B] -> (logits [B, vocab_size], state)``.

        ``state=None`` starts new sequences; the state's size does not grow with the sequence.
        """
        self._check_idx(tokens, 1, "tokens")
        if state is not None and len(state) != len(self.blocks):
            raise ValueError(f"state has {len(state)} blocks, the model {len(self.blocks)}")
        x = self._embed(tokens)  # (B, C)
        new_state = []
        for i, block in enumerate(self.blocks):
            x, s = block.step(x, None if state is None else state[i])
            new_state.append(s)
        return self.head(self.ln_out(x)), tuple(new_state)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None,
                 seed: int | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` after the prompt ``idx [B, T]`` with the recurrent mode.

        Returns ``[B, T + max_new_tokens]``. ``temperature`` 0 is greedy; ``top_k`` keeps the k most likely
        tokens, ``top_p`` the smallest set whose probability reaches p; ``seed`` makes a new generator.
        """
        self._check_idx(idx, 2, "idx")
        check_sampling(max_new_tokens, temperature, top_k, top_p)
        if seed is not None:
            generator = torch.Generator(device=idx.device).manual_seed(seed)
        state = None
        for t in range(idx.shape[1]):  # the prompt, one token at a time: O(T) and constant memory
            logits, state = self.step(idx[:, t], state)
        out = [idx]
        for _ in range(max_new_tokens):
            nxt = sample(logits, temperature, top_k, top_p, generator)
            out.append(nxt[:, None])
            logits, state = self.step(nxt, state)
        return torch.cat(out, dim=1)


def check_sampling(max_new_tokens, temperature, top_k, top_p) -> None:
    """The arguments of ``generate``, checked before any token is computed."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1 (the number of tokens kept), got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p!r}")


def sample(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
           generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of ``logits [B, V]``."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep tokens until the mass before them reaches p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(F.softmax(logits, -1), 1, generator=generator)[:, 0]


def spikegpt(name: str = "spikegpt-demo", **overrides) -> SpikeGPT:
    """A SpikeGPT preset (``list(PRESETS)``) with config overrides, e.g. ``spikegpt("spikegpt-45m", vocab_size=256)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown SpikeGPT preset {name!r}; choose from {sorted(PRESETS)}")
    fields = set(SpikeGPTConfig.__dataclass_fields__)
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown SpikeGPTConfig fields {sorted(unknown)}; known: {sorted(fields)}")
    return SpikeGPT(replace(SpikeGPTConfig(**PRESETS[name]), **overrides))


def config_dict(model: SpikeGPT) -> dict:
    """The model's config as a plain dict (saved in checkpoints)."""
    return asdict(model.config)
