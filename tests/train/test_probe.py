"""fit_head: the head alone becomes a logistic regression on the frozen features; nothing else changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from spikeattn.models import spikformer
from spikeattn.train.probe import fit_head, head_features


class Toy(nn.Module):
    """Features = a fixed linear map of the input, repeated over T=3 steps; a BN buffer to watch."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        f = self.bn(self.body(x))
        return self.head(torch.stack([f, 2 * f, 3 * f])).mean(0)   # [T, B, C] into the head


def _blobs(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    return TensorDataset(centres[y] + torch.randn(n, 4, generator=g), y)


def test_separable_features_are_fitted_and_only_the_head_changes():
    torch.manual_seed(0)
    model, data = Toy(), _blobs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    acc = fit_head(model, data)
    after = model.state_dict()
    assert acc > 0.97, acc                                      # three well-separated blobs
    for k in before:
        same = torch.equal(before[k], after[k])
        assert same != k.startswith("head."), k                 # the head moved, every other tensor (BN buffers too) did not
    x, y = data.tensors
    model.train()
    assert (model(x).argmax(1) == y).float().mean().item() == pytest.approx(acc)   # the returned accuracy is the model's


def test_head_features_average_the_time_axis():
    torch.manual_seed(0)
    model = spikformer("spikformer-v2-mini-fmnist", T=2)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    feats, labels = head_features(model, TensorDataset(x, y), batch_size=8)
    seen = []
    model.head.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    model.train()
    with torch.no_grad():
        model(x[:8]), model(x[8:])
    assert seen[0].shape == (2, 8, 64)
    torch.testing.assert_close(feats, torch.cat([s.mean(0) for s in seen]))
    assert torch.equal(labels, y)


def test_needs_a_linear_head():
    with pytest.raises(TypeError, match="nn.Linear"):
        fit_head(nn.Sequential(nn.Linear(2, 2)), _blobs())
