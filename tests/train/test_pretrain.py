"""Masked-image pretraining: masks, the masked-only loss, the MAE wrapper, and encoder weights into a classifier."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from spikeattn.models import spikformer
from spikeattn.models.spikformer_mae import SpikformerMAE, patchify, unpatchify
from spikeattn.train import TrainConfig
from spikeattn.train.pretrain import (PRETRAINED_NAME, WithoutLabels, init_from, mae_loss, masked_mse, pretrain,
                                      random_keep_mask)
from spikeattn.train.model_file import load_model

V2 = "spikformer-v2-mini-fmnist"


def small_v2(**kw):
    return spikformer(V2, stem_extra_convs=(0, 1, 0, 1), dim=32, **kw)


def test_random_keep_mask():
    keep = random_keep_mask(5, 49, 0.75, generator=torch.Generator().manual_seed(0))
    assert keep.dtype == torch.bool and keep.shape == (5, 49)
    assert (keep.sum(1) == 12).all()            # round(49 * 0.25)
    assert not (keep == keep[0]).all()          # a different mask per image
    assert random_keep_mask(2, 4, 0.99).sum(1).tolist() == [1, 1]
    assert torch.equal(keep, random_keep_mask(5, 49, 0.75, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="mask_ratio"):
        random_keep_mask(2, 49, 1.0)


def test_patchify_round_trip():
    x = torch.randn(2, 3, 28, 20)
    p = patchify(x, (4, 5))
    assert p.shape == (2, 7 * 4, 4 * 5 * 3)
    assert torch.equal(p[1, 4 + 1].reshape(4, 5, 3).permute(2, 0, 1), x[1, :, 4:8, 5:10])  # row 1, column 1
    assert torch.equal(unpatchify(p, (4, 5), (7, 4), 3), x)


def test_loss_counts_only_masked_patches():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 6, 16, generator=g), torch.randn(2, 6, 16, generator=g)
    keep = torch.tensor([[True, False, False, True, False, False], [False, True, False, False, False, True]])
    base = masked_mse(pred, target, keep, norm_pix=True)
    visible, masked = target.clone(), target.clone()
    visible[0, 0] += torch.randn(16, generator=g)   # token 0 of image 0 is visible
    masked[0, 1] += torch.randn(16, generator=g)    # token 1 of image 0 is masked
    assert torch.equal(masked_mse(pred, visible, keep, norm_pix=True), base)
    assert not torch.isclose(masked_mse(pred, masked, keep, norm_pix=True), base)
    # the value by hand: normalise each target patch, mean squared error over the 8 masked patches
    t = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    expected = ((pred - t) ** 2).mean(-1)[~keep].mean()
    assert torch.allclose(base, expected, rtol=1e-6)
    plain = ((pred - target) ** 2).mean(-1)[~keep].mean()
    assert torch.allclose(masked_mse(pred, target, keep, norm_pix=False), plain)
    assert torch.equal(masked_mse(pred, target, keep), masked_mse(pred, target, keep, norm_pix=False))  # the default


def test_pretrain_defaults_are_the_measured_best():
    """mask 0.4 and norm_pix off won on held-out images (spikformer_v2_pretrain_cpu.json's holdout_sweep)."""
    import inspect

    from spikeattn.train.pretrain import MASK_RATIO, mae_loss, pretrain

    assert MASK_RATIO == 0.4
    for fn in (pretrain, mae_loss):
        params = inspect.signature(fn).parameters
        assert params["mask_ratio"].default == 0.4 and params["norm_pix"].default is False, fn.__name__


def test_mae_predictions_ignore_masked_pixels_and_loss_goes_down():
    torch.manual_seed(0)
    mae = SpikformerMAE(small_v2(), decoder_dim=32, decoder_depth=1)
    x = torch.randn(8, 1, 28, 28)
    keep = random_keep_mask(8, 49, 0.75)
    pred = mae(x, keep)
    assert pred.shape == (8, 49, 16)
    pixels = unpatchify(keep[..., None].float().expand(8, 49, 16), (4, 4), (7, 7), 1)
    assert torch.equal(mae(x + (1 - pixels) * torch.randn_like(x), keep), pred)  # masked content is unseen
    opt = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = mae_loss(mae, x, keep=keep)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_mae_arguments():
    with pytest.raises(TypeError, match="SCS"):
        SpikformerMAE(spikformer("spikformer-mini-fmnist"))
    with pytest.raises(ValueError, match="multiple"):
        SpikformerMAE(spikformer(V2, img_size=30))
    mae = SpikformerMAE(small_v2(), decoder_dim=16, decoder_depth=1)
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="same number"):
        mae(x, torch.tensor([[True] * 10 + [False] * 39, [True] * 11 + [False] * 38]))
    with pytest.raises(TypeError, match="bool"):
        mae(x, torch.ones(2, 49))


def test_pretrain_checkpoint_round_trips_into_a_classifier(tmp_path):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    config = TrainConfig(steps=3, batch_size=16, lr=1e-3, out_dir=str(tmp_path), progress=False)
    encoder = small_v2()
    mae, summary = pretrain(encoder, data, config, mask_ratio=0.5, decoder_dim=16, decoder_depth=1)
    assert summary["pretrained"] == str(tmp_path / PRETRAINED_NAME) and summary["final_eval_acc"] is None
    assert summary["final_train_loss"] > 0

    for source in (tmp_path / PRETRAINED_NAME, tmp_path / "ckpt.pt"):  # the encoder file and the trainer checkpoint
        torch.manual_seed(1)
        clf = small_v2(T=4)
        head = {k: v.clone() for k, v in clf.head.state_dict().items()}
        init_from(clf, source)
        state, pre = clf.state_dict(), encoder.state_dict()
        enc_keys = [k for k in state if k.startswith(("embed.", "blocks."))]
        assert enc_keys and all(torch.equal(state[k], pre[k]) for k in enc_keys), source
        assert all(torch.equal(clf.head.state_dict()[k], v) for k, v in head.items())  # the head is not loaded
    loaded, extra = load_model(tmp_path / PRETRAINED_NAME)
    assert extra["pretrain"]["mask_ratio"] == 0.5 and loaded.config == encoder.config
    with pytest.raises(ValueError, match="does not fit"):
        init_from(spikformer(V2), tmp_path / PRETRAINED_NAME)  # dim 64 vs 32
    with pytest.raises(FileNotFoundError):
        init_from(small_v2(), tmp_path / "missing.pt")


def test_without_labels():
    data = WithoutLabels(TensorDataset(torch.randn(3, 1, 2, 2), torch.tensor([4, 5, 6])))
    x, y = data[1]
    assert len(data) == 3 and x.shape == (1, 2, 2) and y.item() == 0.0 and y.is_floating_point()


@pytest.mark.parametrize("attention", ["ssa", "sdsa"])
def test_attention_scaled_to_the_visible_token_count(attention, monkeypatch):
    """The blocks run on 12 of 49 tokens: every attention's sum is scaled by 49/12 for that call alone
    (SSA's scale times it, SDSA's K*V threshold over it); the modules are never written."""
    import spikeattn.layers.attention as attn_module

    mae = SpikformerMAE(small_v2(attention=attention), decoder_dim=16, decoder_depth=1)
    attns = [b.attn for b in mae.encoder.blocks]
    before = [(a.scale if attention == "ssa" else a.kv_lif.v_th) for a in attns]
    seen = []  # the scale (SSA) or threshold (SDSA) each attention computed with
    if attention == "ssa":
        real = attn_module.ssa_tokens
        monkeypatch.setattr(attn_module, "ssa_tokens", lambda qkv, h, scale, *a: seen.append(scale) or real(qkv, h, scale, *a))
    else:
        real = attn_module.lif_multi_step
        monkeypatch.setattr(attn_module, "lif_multi_step", lambda x, v, p, *a: seen.append(p.v_th) or real(x, v, p, *a))
        for a in attns:  # at factor 1 the module's own LIF runs
            a.kv_lif.register_forward_pre_hook(lambda m, _: seen.append(m.v_th))
    mae(torch.randn(3, 1, 28, 28), random_keep_mask(3, 49, 0.75))
    expected = [v * 49 / 12 if attention == "ssa" else v * 12 / 49 for v in before]
    assert seen == pytest.approx(expected)
    assert [(a.scale if attention == "ssa" else a.kv_lif.v_th) for a in attns] == before
    seen.clear()
    mae(torch.randn(3, 1, 28, 28), torch.ones(3, 49, dtype=torch.bool))                   # all visible: unchanged
    assert seen == pytest.approx(before)
