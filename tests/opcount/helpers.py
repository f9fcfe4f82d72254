"""Shared test modules for the op counter."""

from torch import nn


class Fn(nn.Module):
    """Wraps a plain function, so ops run outside any nn.Linear/Conv module."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)
