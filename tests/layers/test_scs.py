"""SCS (Spikformer V2 stem): shapes per preset and image size, exact masking, SPS as its special case, sizes."""

from __future__ import annotations

import pytest
import torch

from spikeattn.layers import SCS, SPS
from spikeattn.models import spikformer
from spikeattn.models.spikformer import PRESETS

V2 = ["spikformer-v2-8-384", "spikformer-v2-8-512", "spikformer-v2-mini-fmnist"]


@pytest.mark.parametrize("name", V2)
def test_preset_stem_shapes(name):
    c = spikformer(name).config
    scs = SCS(c.in_channels, c.dim, c.img_size, c.pool_stages, c.stem_extra_convs)
    h = c.img_size if isinstance(c.img_size, int) else c.img_size[0]
    with torch.no_grad():
        y = scs(torch.rand(1, 2, c.in_channels, h, h))
    side = h // 2 ** len(c.pool_stages)
    assert y.shape == (1, 2, side * side, c.dim)
    assert scs.num_tokens == side * side
    assert torch.equal(y, y.round()) and y.min() >= 0  # spike counts


@pytest.mark.parametrize("img_size, pools, grid", [(32, (2, 3), (8, 8)), (28, (0, 1), (7, 7)), ((24, 40), (0, 1, 2), (3, 5)),
                                                   (17, (0,), (9, 9))], ids=["cifar", "fmnist", "non-square", "odd"])
@pytest.mark.parametrize("T", [1, 3])
def test_shapes_for_image_sizes(img_size, pools, grid, T):
    scs = SCS(2, 32, img_size, pools, extra_convs=(1, 0, 2, 1))
    size = (img_size, img_size) if isinstance(img_size, int) else img_size
    y = scs(torch.rand(T, 3, 2, *size))
    assert y.shape == (T, 3, grid[0] * grid[1], 32) and scs.grid == grid


def test_without_extra_convs_it_is_sps():
    sps = SPS(1, 32, 28, (0, 1))
    scs = SCS(1, 32, 28, (0, 1), extra_convs=(0, 0, 0, 0))
    assert set(scs.state_dict()) == set(sps.state_dict())
    scs.load_state_dict(sps.state_dict())
    x = torch.rand(2, 4, 1, 28, 28)
    assert torch.equal(scs(x), sps(x))


@pytest.mark.parametrize("img_size, pools", [(28, (0, 1)), (32, (0, 1, 2))])
def test_masked_positions_stay_exactly_zero(img_size, pools):
    torch.manual_seed(0)
    scs = SCS(1, 32, img_size, pools, extra_convs=(1, 1, 1, 2))
    for m in scs.modules():  # BN shift 0.5: at zero input every neuron is driven, so a missing re-mask shows
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.constant_(m.bias, 0.5)
    gh, gw = scs.grid
    keep = torch.rand(3, gh, gw) < 0.4
    keep[:, 0, 0] = True
    x = torch.randn(2, 3, 1, img_size, img_size)
    y = scs(x, keep)                                           # (T, B, N, C)
    flat = keep.flatten(1)
    assert (y[:, ~flat] == 0).all(), "a masked token is not exactly zero"
    assert (y[:, flat] != 0).any()
    # the masked pixels' content does not matter at all (not even through BN batch statistics)
    pixels = torch.nn.functional.interpolate(keep[:, None].float(), size=(img_size, img_size), mode="nearest")
    noisy = x + (1 - pixels) * 5 * torch.randn_like(x)
    assert not torch.equal(noisy, x)
    assert torch.equal(scs(noisy, keep), y)
    # without a mask the same positions are not zero: the test above can fail
    assert (scs(x)[:, ~flat] != 0).any()



def test_masked_training_normalises_with_visible_cells_only():
    """SparK's sparse BN: in a masked forward the stem's BN statistics are those of the visible cells."""
    torch.manual_seed(0)
    scs = SCS(1, 16, 28, (0, 1), extra_convs=(1, 0, 0, 1)).train()
    keep = torch.rand(4, *scs.grid) < 0.25
    keep[:, 0, 0] = True
    x = torch.randn(2, 4, 1, 28, 28)
    conv, bn = scs.stages[0].conv
    inputs = []
    conv.register_forward_hook(lambda m, a, out: inputs.append(out.detach()))
    scs(x, keep)
    pixels = torch.nn.functional.interpolate(keep[:, None].float(), size=(28, 28), mode="nearest")
    visible = pixels.expand(2, 4, 1, 28, 28).flatten(0, 1).bool()[:, 0]          # (T*B, 28, 28)
    values = inputs[0].movedim(1, -1)[visible]                                    # (V, C)
    torch.testing.assert_close(bn.running_mean, 0.1 * values.mean(0))             # from 0, momentum 0.1
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * values.var(0))         # from 1, unbiased
    assert int(bn.num_batches_tracked) == 1
    # the masked pixels were zeros going in: plain BN would have averaged them in
    assert not torch.allclose(bn.running_mean, 0.1 * inputs[0].mean((0, 2, 3)))

def test_bad_arguments():
    with pytest.raises(ValueError, match="extra_convs"):
        SCS(1, 32, 28, (0, 1), extra_convs=(1, 1, 1))
    with pytest.raises(ValueError, match="extra_convs"):
        SCS(1, 32, 28, (0, 1), extra_convs=(1, -1, 1, 1))
    with pytest.raises(ValueError, match="dim"):
        SCS(1, 30, 28)
    scs = SCS(1, 32, 28, (0, 1), extra_convs=(0, 0, 0, 1))
    with pytest.raises(ValueError, match="keep"):
        scs(torch.rand(1, 2, 1, 28, 28), torch.ones(2, 14, 14, dtype=torch.bool))
    with pytest.raises(ValueError, match="SCS expects"):
        scs(torch.rand(1, 2, 1, 32, 32))


@pytest.mark.parametrize("name, reported", [("spikformer-v2-8-384", 29.11e6), ("spikformer-v2-8-512", 51.55e6)])
def test_preset_parameter_counts_match_the_docstring(name, reported):
    n = spikformer(name).num_params()
    c = PRESETS[name]
    stem = sum(p.numel() for p in SCS(c["in_channels"], c["dim"], 224, c["pool_stages"], c["stem_extra_convs"]).parameters())
    print(f"{name}: {n:,} parameters ({100 * (n / reported - 1):+.2f}% vs reported {reported / 1e6:.2f}M), "
          f"stem {stem / c['dim'] ** 2:.1f} C^2")
    assert abs(n / reported - 1) < 0.005
    assert f"{n / 1e6:.2f}M" in SCS.__doc__ and f"{100 * (n / reported - 1):+.2f}%" in SCS.__doc__
    assert f"{stem / c['dim'] ** 2:.1f} C^2" in SCS.__doc__
