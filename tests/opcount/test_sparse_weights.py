"""Our own report's footprint, connection sparsity and zero-weight-skipping synaptic ops (sop_nzw),
beside the dense fan-out sop, against hand counts."""

import torch
from torch import nn
from torch.nn import functional as F

import spikeattn as sa
from spikeattn.opcount import count


def test_linear_sop_nzw_skips_zero_weights_and_sop_does_not():
    fc = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 1.0, 0.0], [3.0, 0.0, 0.0, 1.0]]))
    x = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])  # spikes; input 1 has only zero weights
    r = count(fc, x)
    assert r.total("sop") == 5 * 3                  # 5 spikes x fan-out 3
    # nonzero weights per input column: 2, 0, 2, 1 -> row 0: 2 + 0 + 1, row 1: 0 + 2
    assert r.total("sop_nzw") == 5
    assert r.connection_sparsity == 7 / 12 and r.footprint_bytes == 12 * 4


def test_integer_input_sop_nzw_counts_magnitudes():
    w = torch.tensor([[1.0, 0.0], [2.0, 5.0]])
    x = torch.tensor([[2.0, 3.0]])  # integer counts (a residual sum)
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    r = count(lin, x)
    assert r.total("sop") == (2 + 3) * 2 and r.total("sop_nzw") == 2 * 2 + 3 * 1


def test_conv_sop_nzw_equals_a_convolution_of_events_with_the_nonzero_mask():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, groups=1)
    with torch.no_grad():
        conv.weight.mul_((torch.rand(conv.weight.shape) > 0.5).float())
    x = (torch.rand(2, 3, 7, 7) < 0.3).float()
    r = count(conv, x)
    expected = F.conv2d(x.double(), (conv.weight != 0).double(), None, 2, 1).sum()
    assert r.total("sop_nzw") == int(expected) < r.total("sop")
    assert r.total("sop") == int(F.conv2d(x.double(), torch.ones_like(conv.weight).double(), None, 2, 1).sum())


def test_functional_weights_count_in_connection_sparsity():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
            self.unused = nn.Parameter(torch.zeros(100))  # never read by a counted op: not a connection

        def forward(self, x):
            return x @ self.w

    r = count(Functional(), torch.ones(1, 2))
    assert r.connection_sparsity == 3 / 4
    assert r.footprint_bytes == (4 + 100) * 4
    assert r.neurobench()["ConnectionSparsity"] == 0.75


def test_table_shows_both_synaptic_op_figures():
    text = count(nn.Sequential(nn.Linear(4, 3), sa.neuron.LIF()), torch.rand(2, 1, 4)).table()
    assert "SOP nz-w" in text.splitlines()[0] and " SOP " in text.splitlines()[0]
