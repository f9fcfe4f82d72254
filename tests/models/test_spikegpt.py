"""SpikeGPT model: preset sizes, recurrent == parallel logits at every position and depth, generation
(constant state size, sampling options, determinism), checkpoint config, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

import spikeattn as sa
from spikeattn.models.spikegpt import PRESETS, SpikeGPT, SpikeGPTConfig, count_parameters, spikegpt
from tests.conftest import OpNames, assert_close
from tests.layers.test_rwkv import randomize


# Token-sized matmuls: a second OpenMP thread only adds contention on a shared CPU.
pytestmark = pytest.mark.usefixtures("one_thread")


def random_model(n_layers: int, dim: int = 32, vocab: int = 40, **kw) -> SpikeGPT:
    torch.manual_seed(n_layers)
    model = SpikeGPT(SpikeGPTConfig(vocab_size=vocab, n_layers=n_layers, dim=dim, context=64, **kw))
    randomize(model, 0.3)
    return model.eval()


def recurrent_logits(model, idx):
    state, out = None, []
    for t in range(idx.shape[1]):
        logits, state = model.step(idx[:, t], state)
        out.append(logits)
    return torch.stack(out, 1), state


@pytest.mark.parametrize("name, size", [("spikegpt-45m", 45e6), ("spikegpt-216m", 216e6)])
def test_preset_sizes(name, size, capsys):
    with torch.device("meta"):
        model = spikegpt(name)
    n = sum(p.numel() for p in model.parameters())
    with capsys.disabled():
        print(f"\n{name}: {n / 1e6:.1f}M parameters")
    assert n == count_parameters(model.config)
    assert abs(n - size) <= 0.10 * size
    assert len(model.blocks) == PRESETS[name]["n_layers"]


def test_demo_preset_builds_and_counts():
    model = spikegpt("spikegpt-demo")
    assert sum(p.numel() for p in model.parameters()) == count_parameters(model.config)
    tied = spikegpt("spikegpt-demo", tie_head=True)
    assert tied.head.weight is tied.emb.weight
    assert sum(p.numel() for p in tied.parameters()) == count_parameters(tied.config)


@pytest.mark.parametrize("n_layers", [1, 2, 8, 12, 18])
def test_recurrent_equals_parallel(n_layers):
    """The original recurrent runner drifts from the parallel form beyond 6 layers; ours must not."""
    model = random_model(n_layers)
    idx = torch.randint(0, 40, (2, 24), generator=torch.Generator().manual_seed(0))
    rates = []
    for block in model.blocks:
        block.lif_ffn.register_forward_hook(lambda m, i, o: rates.append(o.mean().item()))
    with torch.no_grad():
        parallel = model(idx)
        recurrent, _ = recurrent_logits(model, idx)
    assert 0.02 < sum(rates) / len(rates) < 0.98, "the model must both fire and stay silent"
    assert_close(recurrent, parallel, 0.0, 1e-5, what=f"{n_layers} layers")


def test_recurrent_equals_parallel_18_layers_short():
    model = random_model(18, dim=16)
    idx = torch.randint(0, 40, (1, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_close(recurrent_logits(model, idx)[0], model(idx), 0.0, 1e-5)


def test_recurrent_equals_parallel_with_binary_embedding():
    model = random_model(2, binary_embedding=True)
    idx = torch.randint(0, 40, (2, 12))
    with torch.no_grad():
        assert_close(recurrent_logits(model, idx)[0], model(idx), 0.0, 1e-5)


def test_state_size_is_constant():
    model = random_model(2)
    idx = torch.randint(0, 40, (1, 50))
    numel = lambda state: sum(t.numel() for t in torch.utils._pytree.tree_leaves(state))  # noqa: E731
    with torch.no_grad():
        _, s10 = recurrent_logits(model, idx[:, :10])
        _, s50 = recurrent_logits(model, idx)
    assert numel(s10) == numel(s50) == 2 * (2 + 3 + 2) * 32  # per block: 2 shifts, a/b/p, 2 membranes


def test_generate_uses_the_recurrent_mode(monkeypatch):
    model = random_model(2)
    monkeypatch.setattr(model, "forward", lambda *a: pytest.fail("generate must not rerun the parallel model"))
    prompt = torch.randint(0, 40, (2, 5))
    out = model.generate(prompt, 7, temperature=0.8, top_k=5, seed=3)
    assert out.shape == (2, 12) and torch.equal(out[:, :5], prompt)
    assert torch.equal(out, model.generate(prompt, 7, temperature=0.8, top_k=5, seed=3))
    greedy = model.generate(prompt, 4, temperature=0)
    logits, _ = recurrent_logits(model, prompt)
    assert torch.equal(greedy[:, 5], logits[:, -1].argmax(-1))
    top1 = model.generate(prompt, 4, top_p=1e-6, seed=0)  # only the most likely token survives
    assert torch.equal(top1, greedy)


def test_trains():
    model = random_model(1, dim=16)
    torch.manual_seed(0)
    idx = torch.randint(0, 40, (4, 16))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        logits = model(idx[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(torch.zeros(2, 3)), "idx must be an int64"),
        (lambda m: m(torch.zeros(3, dtype=torch.long)), r"\[B, T\]"),
        (lambda m: m(torch.full((1, 2), 40)), "outside"),
        (lambda m: m.step(torch.zeros(1, 2, dtype=torch.long)), r"\[B\]"),
        (lambda m: m.generate(torch.zeros(1, 0, dtype=torch.long), 2), "at least one"),
        (lambda m: spikegpt("gpt-2"), "unknown SpikeGPT preset"),
        (lambda m: spikegpt("spikegpt-demo", layers=3), "unknown SpikeGPTConfig"),
        (lambda m: SpikeGPTConfig(dim=0), "dim must be"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(random_model(1))


def test_onednn_linear_layers_match_f_linear():
    """SpikeGPT with its Linear layers on spikeattn.ops.linear.autograd.Linear (oneDNN GEMMs; what
    benchmarks/bench_models.py times against F.linear) against nn.Linear: logits and gradients agree
    to fp32 rounding (no spike flips at this size and seed)."""
    from spikeattn.ops.linear.autograd import Linear

    torch.manual_seed(0)
    model = sa.models.spikegpt("spikegpt-demo", n_layers=2)
    for m in model.modules():  # RWKV-4 zero-inits some projections: give every GEMM something to do
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.1)
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 2 * 7 + 1
    idx = torch.randint(0, 96, (4, 64))
    results = []
    for cls in (Linear, nn.Linear):
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.__class__ = cls
        model.zero_grad(set_to_none=True)
        logits = model(idx)
        F.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (a, grads_a), (b, grads_b) = results
    assert_close(a, b, 1e-5, 1e-5, what="logits")
    for name in grads_a:
        assert_close(grads_a[name], grads_b[name], 1e-4, 1e-6, what=name)


def _logits_grads_spikes(model, idx):
    spikes = []
    hooks = [m.register_forward_hook(lambda m, i, o: spikes.append(o.detach())) for m in model.modules()
             if isinstance(m, sa.neuron.LIF)]
    model.zero_grad(set_to_none=True)
    logits = model(idx)
    F.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
    for h in hooks:
        h.remove()
    return logits.detach(), {n: p.grad for n, p in model.named_parameters()}, spikes


@settings(max_examples=12, deadline=None, derandomize=True)
@given(n_layers=st.integers(1, 3), dim=st.integers(4, 40), batch=st.integers(1, 3), T=st.integers(1, 80))
def test_fast_paths_match_the_reference_formulation(n_layers, dim, batch, T):
    """The fused token mix, channel-mix core, relu^2, sigmoid gate and WKV kernels against the plain formulation
    (token mixes as ``x * m + xx * (1 - m)``, ``F.linear`` and ``square(relu(.))``, the WKV torch loop): the
    same spikes, logits to fp32 rounding (the vector exp/log of WKV round differently), gradients to 1e-4 of
    their scale."""
    from spikeattn.layers import rwkv
    from spikeattn.ops import token_mix as tm
    from spikeattn.ops.relu_square import naive_relu_square
    from spikeattn.ops import srffn
    from spikeattn.ops.sigmoid_gate import naive_sigmoid_gate
    from spikeattn.ops.token_mix.reference import naive_token_mix

    model = random_model(n_layers, dim=dim).train()
    idx = torch.randint(0, 40, (batch, T), generator=torch.Generator().manual_seed(T))
    fast = _logits_grads_spikes(model, idx)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rwkv, "relu_square", naive_relu_square)
        mp.setattr(rwkv, "sigmoid_gate", naive_sigmoid_gate)
        mp.setitem(tm.BACKENDS, "cpu", naive_token_mix)
        mp.setitem(srffn.BACKENDS, "cpu", srffn.naive_srffn)
        for block in model.blocks:
            mp.setattr(block.att, "wkv_backend", "torch")
        ref = _logits_grads_spikes(model, idx)
    assert len(fast[2]) == 2 * n_layers and all(torch.equal(a, b) for a, b in zip(fast[2], ref[2]))
    assert_close(fast[0], ref[0], 1e-5, 1e-6, what="logits")
    for name, p in model.named_parameters():
        # the WKV loop leaves time_decay without a gradient at T = 1 (nothing decays); the kernel gives 0
        a, e = (grads[name] if grads[name] is not None else torch.zeros_like(p) for grads in (fast[1], ref[1]))
        assert_close(a, e, 1e-4, 1e-7, what=name)


def test_fused_block_paths_have_the_bits_of_the_separate_modules():
    """Training and eval run each block's ``x + LIF(y)`` as ``spikeattn::lif_residual`` (one pass) and the
    time and channel mixes' GEMMs, WKV and pointwise steps as ``spikeattn::srwkv`` and ``spikeattn::srffn``;
    forward hooks on the neurons and the
    Linear layers make the blocks call those modules one by one (so the hooks see them run). Both give the
    same logits and gradients, bit for bit, with spikes firing."""
    model = random_model(2, dim=64).train()
    idx = torch.randint(0, 40, (2, 128), generator=torch.Generator().manual_seed(1))  # xk: 16384 elements
    watched = [m for m in model.modules() if isinstance(m, (sa.neuron.LIF, nn.Linear)) and m is not model.head]

    def run():
        model.zero_grad(set_to_none=True)
        with OpNames() as names:
            logits = model(idx)
            F.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
        return logits.detach(), [p.grad for p in model.parameters()], names.names

    fused = run()
    spikes = []
    hooks = [m.register_forward_hook(lambda m, i, o: spikes.append(o)) for m in watched]
    unfused = run()
    for h in hooks:
        h.remove()
    fused_ops = ("spikeattn::lif_residual", "spikeattn::srffn", "spikeattn::srwkv")
    assert [fused[2].count(op) for op in fused_ops] == [2 * 2, 2, 2]
    assert not any(n.startswith(fused_ops) for n in unfused[2])
    neurons = [s for s in spikes if s.shape[-1] == 64 and set(s.unique().tolist()) <= {0.0, 1.0}]
    assert len(neurons) >= 4 and all(0 < s.mean() < 0.5 for s in neurons)
    assert torch.equal(fused[0], unfused[0])
    assert all(torch.equal(a, b) for a, b in zip(fused[1], unfused[1]))
    with torch.no_grad(), OpNames() as names:
        assert torch.equal(model.eval()(idx), fused[0])
    assert [names.names.count(op) for op in ("spikeattn::lif_residual_inference", *fused_ops[1:])] == [4, 2, 2]
