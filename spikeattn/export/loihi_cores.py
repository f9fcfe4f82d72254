r"""How many Loihi cores one layer needs, by the published partitioners' rules (no torch).

A dense layer (nengo-loihi's rule) takes

.. math:: \max\Big(\Big\lceil \frac{n}{N_{core}} \Big\rceil, \Big\lceil \frac{a_{in}}{A_{in}} \Big\rceil,
          \Big\lceil \frac{a_{out}}{A_{out}} \Big\rceil, \Big\lceil \frac{\text{synapse bits}}{M_{core}} \Big\rceil\Big)

cores, where an axon's synapses are stored in groups of ``synapses_per_group`` with a
``group_header_bits`` header, each group rounded up to a 64-bit word (nengo-loihi
``SynapseConfig.bits_per_axon``). A convolution is tiled as NxSDK and the Loihi 2 compiler do:
blocks of ``(out channels, rows, cols)`` of the output (and, only when even one output pixel's
fan-in exceeds a core, groups of input channels), the tiling with the fewest cores whose every core
is within every limit. Its synapses are stored sparsely (``index_bits`` more per synapse).
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

LIMITS = ("neurons", "input axons", "output axons", "synapse memory", "synapse words per axon")


class LayerTooLarge(ValueError):
    """No tiling of the layer fits a core, or it needs more cores than the profile's largest system."""


def bits_per_axon(n: int, weight_bits: int, p) -> int:
    """Synapse-memory bits of one input axon with ``n`` synapses of ``weight_bits`` bits each."""
    if n <= 0:
        return 0
    g, word = int(p["core.synapses_per_group"]), int(p["core.word_bits"])
    group = lambda k: -word * (-(k * weight_bits + int(p["core.group_header_bits"])) // word)  # noqa: E731
    full, rest = divmod(n, g)
    return full * group(g) + (group(rest) if rest else 0)


def _binding(needs: dict) -> str:
    """The limit that sets the core count (the largest need; ties go to the earlier limit)."""
    return max(LIMITS, key=lambda k: (needs.get(k, 0), -LIMITS.index(k)))


def dense_cores(tokens: int, d_in: int, d_out: int, axons_out: int, weight_bits: int, p) -> dict:
    """Cores of ``tokens`` independent ``Linear(d_in, d_out)`` blocks (weights stored densely).

    ``axons_out``: output axons of the whole layer. Returns the layer's resources, ``cores`` and
    ``binding``; ``needs`` holds each limit's own core count.
    """
    neurons, axons_in = tokens * d_out, tokens * d_in
    per_axon = bits_per_axon(d_out, weight_bits, p)
    bits = axons_in * per_axon
    needs = {
        "neurons": math.ceil(neurons / p["core.neurons"]),
        "input axons": math.ceil(axons_in / p["core.input_axons"]),
        "output axons": math.ceil(axons_out / p["core.output_axons"]),
        "synapse memory": math.ceil(bits / p.synapse_memory_bits),
        # an axon addressing too many words has its fan-out split over several cores
        "synapse words per axon": math.ceil(per_axon / p["core.word_bits"] / p["core.max_words_per_axon"]),
    }
    cores = max(1, *needs.values())
    per_core = {"neurons": -(-neurons // cores), "axons_in": -(-axons_in // cores), "axons_out": -(-axons_out // cores),
                "synapse_bits": -(-bits // cores)}
    return {"neurons": neurons, "axons_in": axons_in, "axons_out": axons_out, "synapse_bits": bits,
            "cores": cores, "binding": _binding(needs), "needs": needs, "per_core": per_core}


def _splits(n: int) -> list[int]:
    """Every distinct block size ``ceil(n / j)`` (largest first): the useful tile sizes of ``n``."""
    return sorted({-(-n // j) for j in range(1, n + 1)}, reverse=True)


@lru_cache(maxsize=None)
def _cover_counts(tile: int, stride: int, k: int, size_in: int) -> Counter:
    """For a tile of ``tile`` outputs along one axis: how many of them each input position feeds,
    as ``Counter({outputs fed: input positions})``, over an interior window clipped to the input."""
    span = (tile - 1) * stride + k
    # input r feeds outputs o with o*stride <= r < o*stride + k
    counts = [min(tile - 1, r // stride) - max(0, -(-(r - k + 1) // stride)) + 1 for r in range(span)]
    counts = sorted(counts, reverse=True)[:size_in]   # a window wider than the input: keep the busiest rows
    return Counter(counts)


def conv_cores(in_shape, out_shape, kernel, stride, axons_out: int, weight_bits: int, p, max_cores: int) -> dict:
    """Tile a conv ``[C, H, W] -> [O, Ho, Wo]``; returns resources, ``tile`` and ``per_core``.

    Every tile is priced as an interior one (the most axons and synapses: border tiles read padding).
    Raises LayerTooLarge if no tiling fits within ``max_cores`` cores.
    """
    (c_in, h, w), (c_out, ho, wo), (kh, kw), (sh, sw) = in_shape, out_shape, kernel, stride
    neurons = c_out * ho * wo
    idx = max(int(p["core.index_bits"]), math.ceil(math.log2(max(2, min(neurons, p["core.neurons"])))))
    syn_bits = weight_bits + min(idx, 12)
    best = None
    for ci in _splits(c_in):                     # input-channel groups only if needed (dendritic sums)
        for tc in _splits(c_out):
            for th in _splits(ho):
                if tc * th > p["core.neurons"]:
                    continue
                rows = _cover_counts(th, sh, kh, h)
                for tw in _splits(wo):
                    n = tc * th * tw
                    if n > p["core.neurons"]:
                        continue
                    cores = -(-c_out // tc) * -(-ho // th) * -(-wo // tw) * -(-c_in // ci)
                    if best is not None and cores >= best["cores"]:
                        continue
                    cols = _cover_counts(tw, sw, kw, w)
                    ax_in = ci * sum(rows.values()) * sum(cols.values())
                    per_axon = {a * b * tc: ci * m * q for a, m in rows.items() for b, q in cols.items()}
                    bits = sum(cnt * bits_per_axon(k, syn_bits, p) for k, cnt in per_axon.items())
                    top_words = bits_per_axon(max(per_axon), syn_bits, p) / p["core.word_bits"]
                    ax_out = -(-axons_out // cores)
                    use = {"neurons": n / p["core.neurons"], "input axons": ax_in / p["core.input_axons"],
                           "output axons": ax_out / p["core.output_axons"],
                           "synapse memory": bits / p.synapse_memory_bits,
                           "synapse words per axon": top_words / p["core.max_words_per_axon"]}
                    if max(use.values()) <= 1:
                        best = {"cores": cores, "tile": [tc, th, tw, ci], "binding": _binding(use),
                                "per_core": {"neurons": n, "axons_in": ax_in, "axons_out": ax_out, "synapse_bits": bits},
                                "utilisation": use}
        if best is not None:
            break
    if best is None or best["cores"] > max_cores:
        need = "no tiling fits one core" if best is None else f"needs {best['cores']} cores"
        raise LayerTooLarge(need)
    taps = kh * kw * c_in
    return {"neurons": neurons, "axons_in": c_in * h * w, "axons_out": axons_out,
            "synapse_bits": best["per_core"]["synapse_bits"] * best["cores"], "dense_synapses": neurons * taps, **best}
