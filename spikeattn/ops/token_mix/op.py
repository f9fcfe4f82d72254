"""The registered token-mix ops (``spikeattn::token_mix`` / ``token_mix_backward``): schemas, fake kernels,
autograd. The CPU kernel registers itself in ``cpu.py``; on other devices the public function runs the
reference."""

from __future__ import annotations

import torch

torch.library.define("spikeattn::token_mix", "(Tensor x, Tensor mixes) -> Tensor[]")
torch.library.define("spikeattn::token_mix_backward",
                     "(Tensor x, Tensor mixes, Tensor[] grads) -> (Tensor, Tensor)")


@torch.library.register_fake("spikeattn::token_mix")
def _forward_fake(x, mixes):
    return [torch.empty_like(x) for _ in range(mixes.shape[0])]


@torch.library.register_fake("spikeattn::token_mix_backward")
def _backward_fake(x, mixes, grads):
    return torch.empty_like(x), torch.empty_like(mixes)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grads):
    x, mixes = ctx.saved_tensors
    grads = [torch.zeros_like(x) if g is None else g.contiguous() for g in grads]
    return torch.ops.spikeattn.token_mix_backward(x, mixes, grads)


torch.library.register_autograd("spikeattn::token_mix", _backward, setup_context=_setup_context)
