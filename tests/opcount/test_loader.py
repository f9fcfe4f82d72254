"""count_loader: the sum of per-batch counts (uneven last batch, max_batches), per-sample NeuroBench
figures over the whole loader, a progress bar, bad input."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import spikeattn as sa
from spikeattn.opcount import count, count_loader
from spikeattn.opcount.report import KEYS


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.lif1, self.fc2 = nn.Linear(6, 10), sa.neuron.LIF(), nn.Linear(10, 3)

    def forward(self, x):  # x [B, T, 6] -> time-major inside
        return self.fc2(self.lif1(self.fc1(x.transpose(0, 1))))


def data(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 4, 6, generator=g) * 3, torch.zeros(n)


def test_equals_the_sum_of_per_batch_counts_with_an_uneven_last_batch():
    torch.manual_seed(0)
    model, (x, y) = Net(), data()
    total = count_loader(model, DataLoader(TensorDataset(x, y), batch_size=4), progress=False)
    batches = [count(model, x[i:i + 4]) for i in (0, 4, 8)]  # 4, 4 and 2 samples
    assert total.samples == 10
    for key in KEYS:
        assert total.total(key) == sum(b.total(key) for b in batches), key
    for path, row in total.by_module.items():
        assert row == {k: sum(b.by_module[path][k] for b in batches) for k in row}, path
    assert total.total("sop") > 0 and total.total("real_mac") > 0
    nb = total.neurobench()["SynapticOperations"]
    assert nb["Effective_ACs"] == sum(b.total("nb_ac") for b in batches) / 10
    assert nb["Dense"] == sum(b.total("nb_dense") for b in batches) / 10
    spikes = sum(b.total("spikes") for b in batches)
    assert total.neurobench()["ActivationSparsity"] == 1 - spikes / (10 * 4 * 10)
    assert total.firing_rates["lif1"] == spikes / (10 * 4 * 10)


def test_max_batches_stops_early_and_a_bare_tensor_batch_works():
    torch.manual_seed(0)
    model, (x, _) = Net(), data(12)
    two = count_loader(model, DataLoader(x, batch_size=4), max_batches=2, progress=False)
    assert two.samples == 8
    assert two.total("mac") == count(model, x[:8]).total("mac")


def test_progress_bar(capsys):
    count_loader(Net(), DataLoader(TensorDataset(*data(4)), batch_size=2))
    assert "counting" in capsys.readouterr().err


def test_bad_input():
    loader = DataLoader(TensorDataset(*data(4)), batch_size=2)
    with pytest.raises(ValueError, match="max_batches"):
        count_loader(Net(), loader, max_batches=0)
    with pytest.raises(ValueError, match="no batches"):
        count_loader(Net(), [], progress=False)
