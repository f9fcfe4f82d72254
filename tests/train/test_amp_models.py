"""AMP training steps of Spikformer and SpikeGPT: bf16 autocast on the CPU in every run of the suite (dtype
errors of the mixed-precision paths show up without a GPU); bf16 and fp16 on CUDA when a GPU is there."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import spikeattn as sa
from spikeattn.train import TrainConfig, train

HAS_GPU = torch.cuda.is_available()
CASES = [("cpu", "bf16"),
         pytest.param("cuda", "bf16", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")]),
         pytest.param("cuda", "fp16", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")])]


@pytest.mark.parametrize("device, amp", CASES)
def test_spikformer_amp_steps(tmp_path, device, amp):
    torch.manual_seed(0)
    model = sa.models.spikformer("spikformer-mini-fmnist", dim=32, heads=2, depth=1, T=2)
    before = [p.detach().clone() for p in model.parameters()]
    data = TensorDataset(torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,)))
    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup_steps=0, out_dir=str(tmp_path), progress=False,
                      device=device, amp=amp)
    summary = train(model, data, cfg)
    assert torch.isfinite(torch.tensor(summary["final_train_loss"]))
    after = list(model.parameters())
    assert all(p.dtype == torch.float32 for p in after)  # autocast leaves the master weights in fp32
    changed = sum(not torch.equal(a.detach().cpu(), b) for a, b in zip(after, before))
    assert changed > len(before) // 2, f"only {changed} of {len(before)} tensors were updated"


@pytest.mark.parametrize("device, amp", CASES)
def test_spikegpt_amp_steps(tmp_path, device, amp):
    torch.manual_seed(0)
    model = sa.models.spikegpt("spikegpt-demo", vocab_size=13, dim=32, n_layers=2)
    ids = torch.randint(0, 13, (16, 17))
    data = TensorDataset(ids[:, :-1], ids[:, 1:])
    loss = lambda logits, y: torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())  # noqa: E731
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup_steps=0, out_dir=str(tmp_path), progress=False,
                      device=device, amp=amp)
    summary = train(model, data, cfg, loss_fn=loss)
    assert torch.isfinite(torch.tensor(summary["final_train_loss"]))
    changed = sum(not torch.equal(a.detach().cpu(), b) for a, b in zip(model.parameters(), before))
    assert changed > len(before) // 2, f"only {changed} of {len(before)} tensors were updated"
