"""Counting rules on crafted inputs, against numbers computed by hand (or by brute-force enumeration)."""

import itertools

import pytest
import torch
from torch import nn

from spikeattn.opcount import count
from tests.opcount.helpers import Fn


def spikes_at(shape, positions):
    x = torch.zeros(shape)
    for p in positions:
        x[p] = 1.0
    return x


# ---- Linear ----------------------------------------------------------------------------------------

def test_linear_binary_input_counts_nnz_times_fanout():
    fc = nn.Linear(4, 3)
    x = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])  # nnz = 3
    r = count(fc, x)
    row = r.by_module["(root)"]
    assert row["mac"] == 2 * 4 * 3
    assert row["sop"] == 3 * 3
    assert row["real_mac"] == 0 and row["sop_mul"] == 0 and row["pairs"] == 0
    assert row["bytes"] == 9 * 4  # one fp32 weight read per accumulate


def test_linear_on_time_major_input_counts_every_step():
    fc = nn.Linear(5, 7, bias=False)
    x = torch.zeros(4, 2, 5)
    x[0, 0, 0] = x[3, 1, 4] = x[2, 1, 2] = 1.0
    r = count(fc, x)
    assert r.total("mac") == 4 * 2 * 5 * 7
    assert r.total("sop") == 3 * 7


def test_linear_integer_input_counts_accumulates_and_multiplies():
    fc = nn.Linear(4, 3)
    x = torch.tensor([[2.0, 0, 1, 0], [0, -3, 0, 0]])  # residual sums of spikes (and a negative one)
    row = count(fc, x).by_module["(root)"]
    assert row["sop"] == (2 + 1 + 3) * 3      # sum |v| * fan-out accumulates
    assert row["sop_mul"] == 3 * 3            # or one multiply per nonzero
    assert row["real_mac"] == 0


def test_linear_real_input_is_macs_only():
    fc = nn.Linear(4, 3)
    x = torch.full((2, 4), 0.5)
    row = count(fc, x).by_module["(root)"]
    assert row["real_mac"] == row["mac"] == 24
    assert row["sop"] == 0
    assert row["bytes"] == (2 * 4 + 4 * 3) * 4  # activations and weights read once


def test_zero_input_costs_no_synaptic_op():
    row = count(nn.Linear(4, 3), torch.zeros(2, 4)).by_module["(root)"]
    assert row["sop"] == 0 and row["real_mac"] == 0 and row["mac"] == 24


def test_binary_valued_weights_are_never_events():
    fc = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        fc.weight.fill_(1.0)  # binary-valued, but a parameter: read per event
    x = torch.full((1, 4), 0.5)
    row = count(fc, x).by_module["(root)"]
    assert row["real_mac"] == 12 and row["sop"] == 0


# ---- Conv ------------------------------------------------------------------------------------------

def brute_force_conv_pairs(x, w_shape, stride, padding, dilation, groups):
    """sum over (nonzero input, output) pairs of |x| * (Cout/groups), enumerating every output tap."""
    cout, cin_g, kh, kw = w_shape
    n, cin, h, wd = x.shape
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    total = 0.0
    for b, c, i, j in itertools.product(range(n), range(cin), range(oh), range(ow)):
        for a, e in itertools.product(range(kh), range(kw)):
            r, s = i * stride[0] - padding[0] + a * dilation[0], j * stride[1] - padding[1] + e * dilation[1]
            if 0 <= r < h and 0 <= s < wd:
                total += abs(float(x[b, c, r, s]))
    return int(total) * (cout // groups)


@pytest.mark.parametrize("pos,expected", [((0, 0), 4 * 2), ((1, 1), 9 * 2), ((3, 0), 4 * 2), ((0, 2), 6 * 2)],
                         ids=["corner", "interior", "corner2", "edge"])
def test_conv_exact_fanout_at_borders(pos, expected):
    conv = nn.Conv2d(1, 2, 3, padding=1)
    x = spikes_at((1, 1, 4, 4), [(0, 0, *pos)])
    row = count(conv, x).by_module["(root)"]
    assert row["sop"] == expected
    assert row["mac"] == 1 * 2 * 4 * 4 * 9


@pytest.mark.parametrize("pos,expected", [((1, 1), 4), ((0, 0), 1), ((3, 3), 1), ((2, 2), 1)])
def test_conv_stride2_fanout(pos, expected):
    # 4x4 input, k3 s2 p1 -> 2x2 output; output row i reads input rows 2i-1..2i+1.
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    row = count(conv, spikes_at((1, 1, 4, 4), [(0, 0, *pos)])).by_module["(root)"]
    assert row["sop"] == expected
    assert row["mac"] == 2 * 2 * 9


def test_conv_groups_fan_out_within_the_group_only():
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)  # 3 output channels per group
    x = spikes_at((1, 4, 5, 5), [(0, 0, 2, 2), (0, 3, 0, 0)])
    row = count(conv, x).by_module["(root)"]
    assert row["sop"] == 9 * 3 + 4 * 3
    assert row["mac"] == 6 * 25 * 2 * 9  # Cout * HW * Cin/g * k*k


def test_conv_dilation():
    conv = nn.Conv2d(1, 1, 3, dilation=2)  # 5x5 -> 1x1, taps at rows/cols {0, 2, 4}
    assert count(conv, spikes_at((1, 1, 5, 5), [(0, 0, 2, 2)])).total("sop") == 1
    assert count(conv, spikes_at((1, 1, 5, 5), [(0, 0, 1, 1)])).total("sop") == 0


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    ((1, 1), (0, 0), (1, 1), 1), ((2, 1), (1, 2), (1, 1), 1), ((2, 2), (1, 1), (2, 1), 2), ((3, 2), (2, 0), (1, 2), 4),
], ids=["plain", "s21-p12", "s2-d21-g2", "s32-p20-d12-g4"])
def test_conv_matches_brute_force_enumeration(stride, padding, dilation, groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, (3, 2), stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = (torch.rand(2, 4, 7, 6) < 0.3).float() * torch.randint(1, 3, (2, 4, 7, 6))  # integer-valued
    args = (conv.weight.shape, stride, padding, dilation, groups)
    row = count(conv, x).by_module["(root)"]
    assert row["sop"] == brute_force_conv_pairs(x, *args)
    assert row["sop_mul"] == brute_force_conv_pairs((x != 0).float(), *args)


def test_conv1d_and_transposed_conv():
    c1 = nn.Conv1d(1, 3, 3, padding=1)
    assert count(c1, spikes_at((1, 1, 6), [(0, 0, 0), (0, 0, 3)])).total("sop") == (2 + 3) * 3
    ct = nn.ConvTranspose2d(1, 2, 3, stride=2)  # each input scatters to a full 3x3 patch
    r = count(ct, spikes_at((1, 1, 3, 3), [(0, 0, 1, 1)]))
    assert r.total("sop") == 9 * 2
    assert r.total("mac") == 9 * 2 * 9


# ---- matmuls written with @ ----------------------------------------------------------------------

def test_matmul_with_at_in_a_plain_function():
    def project(s, w):
        return s @ w

    s = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1]])  # nnz 5, [3, 4]
    w = torch.randn(4, 2)
    row = count(Fn(project), (s, w)).by_module["(root)"]
    assert row["mac"] == 3 * 4 * 2
    assert row["sop"] == 5 * 2
    assert row["bytes"] == 5 * 2 * 4



def test_a_tensor_reused_by_several_matmuls_is_classified_by_its_current_values():
    """The context remembers recent operands; an in-place change in between must not reuse the answer."""
    def twice(s, w):
        first = s @ w           # binary: 5 events x fan-out 2
        second = s.t().t() @ w  # another view of the same values: the same answer
        s.mul_(0.5)             # now real-valued, same memory, same shape
        return first + second + s @ w

    s = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1]])
    row = count(Fn(twice), (s, torch.randn(4, 2))).by_module["(root)"]
    assert row["sop"] == 2 * 5 * 2 and row["real_mac"] == 3 * 4 * 2

Q = torch.tensor([[1.0, 0], [1, 1], [0, 0]])
K = torch.tensor([[1.0, 1], [0, 1], [1, 0]])
V = torch.tensor([[1.0, 0], [0, 1], [1, 1]])
# By hand: Q K^T = [[1,0,1],[2,1,1],[0,0,0]] (sum 6); K^T V = [[2,1],[1,1]] (sum 5);
# Q K^T V = [[2,1],[3,2],[0,0]] (sum 8) in both orders.


def test_spike_spike_attention_qk_first():
    r = count(Fn(lambda q, k, v: (q @ k.t()) @ v), (Q, K, V))
    assert r.by_op["mm"]["mac"] == 3 * 2 * 3 + 3 * 3 * 2
    # exact pairs: sum(Q K^T) + sum(|Q K^T| @ V) = 6 + 8 (an integer value m counts as m events)
    assert r.total("pairs") == 6 + 8
    # event-driven: min(nnz(Q)*3, nnz(K)*3) = 9; then min(sum|QK^T|*2, nnz(V)*3) = min(12, 12)
    assert r.total("event_min") == 9 + 12 == r.total("sop")


def test_spike_spike_attention_kv_first():
    r = count(Fn(lambda q, k, v: q @ (k.t() @ v)), (Q, K, V))
    assert r.total("mac") == 2 * 3 * 2 + 3 * 2 * 2
    assert r.total("pairs") == 5 + 8
    # min(nnz(K^T)*2, nnz(V)*2) = 8; then min(nnz(Q)*2, sum|K^T V|*3) = min(6, 15)
    assert r.total("event_min") == 8 + 6


def test_association_orders_agree_on_the_result_not_on_the_cost():
    qk = count(Fn(lambda q, k, v: (q @ k.t()) @ v), (Q, K, V))
    kv = count(Fn(lambda q, k, v: q @ (k.t() @ v)), (Q, K, V))
    assert torch.equal((Q @ K.t()) @ V, Q @ (K.t() @ V))
    assert qk.total("mac") == 36 and kv.total("mac") == 24           # N^2 d vs N d^2 per matmul pair
    assert qk.total("pairs") != kv.total("pairs")                    # 14 vs 13: only the last matmul's agree
    last = int(((Q @ K.t()) @ V).sum())
    assert qk.total("pairs") - int((Q @ K.t()).sum()) == last == kv.total("pairs") - int((K.t() @ V).sum())


def test_multihead_spike_matmul_through_bmm_equals_sum_of_products():
    torch.manual_seed(0)
    q = (torch.rand(2, 3, 4, 5, 8) < 0.3).float()  # [T, B, heads, N, d]
    k = (torch.rand(2, 3, 4, 5, 8) < 0.3).float()
    r = count(Fn(lambda a, b: a @ b.transpose(-2, -1)), (q, k))
    assert r.total("pairs") == int((q @ k.transpose(-2, -1)).sum())
    assert r.total("mac") == 2 * 3 * 4 * 5 * 8 * 5
    assert r.total("event_min") == min(int(q.sum()) * 5, int(k.sum()) * 5)


def test_einsum_and_functional_linear_are_seen():
    w = nn.Parameter(torch.randn(3, 4))
    s = torch.tensor([[1.0, 1, 0, 0]])
    r1 = count(Fn(lambda x: torch.einsum("bi,oi->bo", x, w)), s)
    r2 = count(Fn(lambda x: nn.functional.linear(x, w)), s)
    assert r1.total("sop") == r2.total("sop") == 2 * 3
    assert r1.total("mac") == r2.total("mac") == 12


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.5], ids=["nan", "inf", "fraction"])
def test_non_finite_or_fractional_inputs_are_real_valued(bad):
    x = torch.tensor([[1.0, 0, 2, 0], [0, 1, 0, 0]])
    x[1, 3] = bad
    row = count(nn.Linear(4, 3), x).by_module["(root)"]
    assert row["real_mac"] == 24 and row["sop"] == 0


def test_classification_of_a_large_tensor_with_one_fraction_after_the_sample():
    x = torch.zeros(2, 8192)
    x[0, :10] = 1.0
    x[1, -1] = 0.25  # past the first 4096 elements checked up front
    assert count(nn.Linear(8192, 2), x).by_module["(root)"]["real_mac"] == 2 * 8192 * 2
    x[1, -1] = 1.0
    assert count(nn.Linear(8192, 2), x).by_module["(root)"]["sop"] == 11 * 2


def ones_kernel_pairs(x, conv):
    """Independent oracle: convolve |x| (channels summed per group) with a ones kernel and sum."""
    g = conv.groups
    per_group = x.abs().reshape(x.shape[0], g, -1, *x.shape[2:]).sum(2)
    ones = torch.ones(g, 1, *conv.kernel_size)
    fn = {(2, False): nn.functional.conv2d, (3, False): nn.functional.conv3d,
          (2, True): nn.functional.conv_transpose2d}[(len(conv.kernel_size), conv.transposed)]
    extra = {"output_padding": conv.output_padding} if conv.transposed else {}
    occ = fn(per_group, ones, None, conv.stride, conv.padding, dilation=conv.dilation, groups=g, **extra)
    cout_per_group = conv.out_channels // g
    return int(occ.sum()) * cout_per_group


@pytest.mark.parametrize("make", [
    lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
    lambda: nn.ConvTranspose2d(2, 3, (2, 3), stride=(1, 2), padding=(0, 2), dilation=(2, 1)),
    lambda: nn.Conv3d(2, 4, (2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), groups=2),
], ids=["convT-s2-p1-op1-g2", "convT-dil", "conv3d"])
def test_transposed_and_3d_conv_match_a_ones_kernel_oracle(make):
    torch.manual_seed(1)
    conv = make()
    spatial = (5, 6) if len(conv.kernel_size) == 2 else (3, 5, 6)
    x = (torch.rand(2, conv.in_channels, *spatial) < 0.4).float()
    r = count(conv, x)
    assert r.total("sop") == ones_kernel_pairs(x, conv) > 0
