"""Which ops need no rule: those that do no synaptic work by the counter's conventions.

Elementwise maths, reductions, views and copies, tensor creation, normalisation, softmax, pooling,
indexing and embedding lookups are not counted (``docs/opcount.md``); spikeattn's LIF op is counted
per neuron by the counter's hooks, its WKV op is an elementwise recurrence, its token mix, relu^2
and sigmoid gate are elementwise, and its spike pool is a max-pool. Any other op without a rule is
reported in ``OpReport.uncounted``, so a total that misses work says so.
"""

from __future__ import annotations

import torch

_FREE_TAGS = {torch.Tag.pointwise, torch.Tag.reduction, torch.Tag.view_copy, torch.Tag.inplace_view}

# By name, without the "aten::" namespace and overload.
_FREE_ATEN = frozenset("""
    _local_scalar_dense _to_copy _unsafe_view alias clone contiguous copy copy_ detach lift_fresh
    lift_fresh_copy empty empty_like empty_strided new_empty new_empty_strided new_full new_ones new_zeros
    full full_like zeros zeros_like ones ones_like arange linspace scalar_tensor fill fill_ zero_ resize_ set_
    cat stack unsafe_split unsafe_split_with_sizes split split_with_sizes unbind chunk repeat flip roll
    constant_pad_nd reflection_pad1d reflection_pad2d replication_pad1d replication_pad2d pad
    index index_select index_put index_put_ _unsafe_index gather scatter scatter_ scatter_add scatter_add_
    masked_select masked_scatter nonzero where take one_hot embedding sort topk argsort cumsum cumprod
    native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training
    _native_batch_norm_legit_functional native_layer_norm native_group_norm _softmax _log_softmax
    max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices avg_pool1d avg_pool2d
    avg_pool3d adaptive_avg_pool1d _adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_max_pool2d
    upsample_nearest2d upsample_bilinear2d _upsample_nearest_exact2d pixel_shuffle pixel_unshuffle im2col col2im
    native_dropout bernoulli bernoulli_ rand rand_like randn randn_like randint randperm normal normal_ uniform_
    multinomial exponential_ item equal is_nonzero allclose isin unique_dim _unique2 bincount histc
    """.split())

# spikeattn's registered ops that are counted elsewhere or are not synaptic work.
_FREE_PROJECT = frozenset({
    "spikeattn::lif_forward",      # one neuron update per element: counted by the counter's neuron hooks
    "spikeattn::lif_inference",    # the same without autograd's state
    "spikeattn::wkv_forward",      # WKV recurrence: elementwise, like its torch reference
    "spikeattn::token_mix",        # SpikeGPT's token shift + mixes: elementwise, like its torch reference
    "spikeattn::relu_square",      # SpikeGPT's relu^2: elementwise, like its torch reference
    "spikeattn::sigmoid_gate",     # SpikeGPT's sigmoid(r) * v: elementwise, like its torch reference
    "spikeattn::spike_pool",       # max-pool of spike maps: pooling, like aten's max_pool2d
    "spikeattn::spike_pool_where",
})


def no_synaptic_work(func) -> bool:
    """True for ops that cost no MACs or synaptic ops by the counter's conventions."""
    if getattr(func, "is_view", False) or _FREE_TAGS.intersection(getattr(func, "tags", ())):
        return True
    name = func.name()
    if name.startswith("aten::"):
        return name[6:].split(".")[0] in _FREE_ATEN
    return name in _FREE_PROJECT
