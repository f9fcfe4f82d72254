import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from spikeattn.train import accuracy


def test_accuracy_counts_argmax_hits_and_sets_eval_mode():
    x = torch.eye(4)                                   # model = identity: predicts the one-hot position
    y = torch.tensor([0, 1, 3, 3])
    model = nn.Sequential(nn.Identity(), nn.Dropout(0.9)).train()
    assert accuracy(model, TensorDataset(x, y), batch_size=3) == 0.75
    assert not model.training


def test_accuracy_of_empty_dataset_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        accuracy(nn.Identity(), TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))
