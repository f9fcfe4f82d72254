"""One model, several threads: a Spikformer and a SpikeGPT shared by concurrent callers give exactly
the outputs of sequential calls, for batch sizes that differ between the threads (no membrane or
other per-call state is kept on the modules)."""

from __future__ import annotations

import contextlib
import threading

import torch

from spikeattn.models import spikegpt, spikformer
from spikeattn.models import spikformer_mae as mae_module
from spikeattn.models.spikformer_mae import SpikformerMAE
from spikeattn.layers.seq import NeuronSpec
from spikeattn.neuron import LIF
from spikeattn.train.bn import recalibrate_bn
from tests.layers.test_rwkv import randomize

BATCHES = (1, 3, 4, 7)
ROUNDS = 3


def calibrated_spikformer():
    """Deterministic weights and BN statistics from a calibration pass, in eval mode."""
    torch.manual_seed(0)
    model = spikformer("spikformer-mini-fmnist", T=2, dim=32, heads=2)
    images = torch.rand(64, 1, 28, 28)
    recalibrate_bn(model, torch.utils.data.TensorDataset(images, torch.zeros(64)), batches=4, batch_size=16)
    return model.eval()


def random_spikegpt():
    torch.manual_seed(1)
    model = spikegpt("spikegpt-demo", n_layers=2, dim=32, vocab_size=40)
    randomize(model, 0.3)  # the RWKV init zeroes projections: random weights make every neuron matter
    return model.eval()


def run_concurrently(fn, jobs_per_thread):
    """Each thread runs its own list of jobs; a barrier before every job makes the threads overlap."""
    barrier = threading.Barrier(len(jobs_per_thread))
    results = [[] for _ in jobs_per_thread]
    errors = []

    def worker(i, jobs):
        try:
            for job in jobs:
                barrier.wait(timeout=60)
                results[i].append(fn(job))
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i, jobs)) for i, jobs in enumerate(jobs_per_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def check_shared(model, inputs, fire_counts):
    with torch.no_grad():
        expected = [model(x) for x in inputs]
    assert all(n > 0 for n in fire_counts()), "every neuron layer must fire, or the test proves nothing"

    def call(i):
        with torch.no_grad():
            return i, model(inputs[i])

    order = list(range(len(inputs))) * ROUNDS
    # Thread 0 runs the batch sizes upwards, thread 1 downwards: at each barrier the two differ.
    results = run_concurrently(call, [order, order[::-1]])
    for per_thread in results:
        assert len(per_thread) == len(order)
        for i, out in per_thread:
            assert torch.equal(out, expected[i]), f"batch of {inputs[i].shape[0]} differs from the sequential run"
    for m in model.modules():
        if isinstance(m, LIF):
            assert m.v is None  # nothing was stored on the modules


def spike_counter(model):
    counts = {}
    for name, m in model.named_modules():
        if isinstance(m, LIF):
            m.register_forward_hook(lambda mod, a, out, name=name: counts.__setitem__(name, counts.get(name, 0)
                                                                                        + int(out.sum())))
    return lambda: list(counts.values())


def test_spikformer_shared_by_threads_equals_sequential():
    model = calibrated_spikformer()
    fired = spike_counter(model)
    gen = torch.Generator().manual_seed(2)
    inputs = [torch.rand(b, 1, 28, 28, generator=gen) for b in BATCHES]
    check_shared(model, inputs, fired)


def test_spikegpt_shared_by_threads_equals_sequential():
    model = random_spikegpt()
    fired = spike_counter(model)
    gen = torch.Generator().manual_seed(3)
    inputs = [torch.randint(0, 40, (b, 5 + b), generator=gen) for b in BATCHES]
    check_shared(model, inputs, fired)


def test_spikegpt_step_shared_by_threads():
    """The recurrent mode passes its state explicitly: concurrent generations equal sequential ones."""
    model = random_spikegpt()
    prompts = [torch.randint(0, 40, (b, 3), generator=torch.Generator().manual_seed(b)) for b in BATCHES]
    expected = [model.generate(p, 6, temperature=0) for p in prompts]
    results = run_concurrently(lambda i: (i, model.generate(prompts[i], 6, temperature=0)),
                               [list(range(len(prompts))), list(range(len(prompts)))[::-1]])
    for per_thread in results:
        for i, out in per_thread:
            assert torch.equal(out, expected[i])


def test_mae_shared_by_threads_equals_sequential(monkeypatch):
    """SpikformerMAE scales its attention sums by N / N_visible for each call: two threads with different
    visible counts (different factors) at once must each get their sequential result."""
    for attention in ("ssa", "sdsa"):
        torch.manual_seed(4)
        mae = SpikformerMAE(spikformer("spikformer-v2-mini-fmnist", dim=32, heads=2, attention=attention, T=2),
                            decoder_dim=16, decoder_depth=1).eval()
        randomize(mae, 0.5)  # at init the attention neurons stay silent
        if attention == "sdsa":
            # SDSA's K*V sums are whole numbers: with v_th = 0.5 >= 1/tau every count >= 1 fires at any
            # factor, so the factor shows only with a slower K*V neuron (tau 8: a count of 4 at factor 1).
            for block in mae.encoder.blocks:
                block.attn.kv_lif = NeuronSpec(tau=8.0).make(v_th=0.5)
        gen = torch.Generator().manual_seed(5)
        inputs = []
        for b, visible in zip(BATCHES, (6, 12, 25, 49)):
            keep = torch.zeros(b, 49, dtype=torch.bool)
            keep[:, torch.randperm(49, generator=gen)[:visible]] = True
            inputs.append((torch.rand(b, 1, 28, 28, generator=gen), keep))
        with torch.no_grad():
            expected = [mae(*x) for x in inputs]
            with monkeypatch.context() as patch:  # the factor must matter, or the test proves nothing
                patch.setattr(mae_module, "token_sums_scaled", lambda factor: contextlib.nullcontext())
                assert all(not torch.equal(mae(*x), e) for x, e in zip(inputs[:3], expected[:3]))
        order = list(range(len(inputs))) * ROUNDS

        def call(i):
            with torch.no_grad():
                return i, mae(*inputs[i])

        for per_thread in run_concurrently(call, [order, order[::-1]]):
            for i, out in per_thread:
                assert torch.equal(out, expected[i]), f"{attention}: batch {i} differs from the sequential run"
