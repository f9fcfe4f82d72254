"""Event npz -> frames, with counts checked by hand; Poisson and direct encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeattn.data import direct_encode, event_folder, events_to_frames, load_events, poisson_encode


def write_events(path, x, y, t, p):
    np.savez(path, x=np.asarray(x, np.uint16), y=np.asarray(y, np.uint16), t=np.asarray(t, np.int64),
             p=np.asarray(p, np.uint8))


def test_counts_by_hand(tmp_path):
    # t spans 100..109 (10 us); T=2 -> windows [100, 105) and [105, 110)
    write_events(tmp_path / "a.npz", x=[0, 0, 2, 1, 2, 2], y=[0, 0, 1, 2, 1, 1],
                 t=[100, 104, 105, 106, 109, 109], p=[1, 1, 0, 1, 0, 1])
    f = events_to_frames(load_events(tmp_path / "a.npz"), T=2, height=3, width=3)
    assert f.shape == (2, 2, 3, 3) and f.dtype == torch.float32
    expected = torch.zeros(2, 2, 3, 3)
    expected[0, 1, 0, 0] = 2       # two ON events at (y=0, x=0) in window 0
    expected[1, 0, 1, 2] = 2       # OFF at (1, 2), t=105 and t=109
    expected[1, 1, 2, 1] = 1       # ON at (2, 1), t=106
    expected[1, 1, 1, 2] = 1       # ON at (1, 2), t=109
    assert torch.equal(f, expected)
    assert f.sum() == 6            # every event counted once


def test_signed_polarity_and_float_time():
    ev = {"x": np.array([0, 1]), "y": np.array([0, 0]), "t": np.array([0.0, 1.0]), "p": np.array([-1, 1])}
    f = events_to_frames(ev, T=4, height=1, width=2)
    assert f[0, 0, 0, 0] == 1 and f[3, 1, 0, 1] == 1 and f.sum() == 2


def test_out_of_sensor(tmp_path):
    ev = {"x": np.array([5]), "y": np.array([0]), "t": np.array([0]), "p": np.array([1])}
    with pytest.raises(ValueError, match="outside"):
        events_to_frames(ev, T=1, height=4, width=4)


def test_missing_key(tmp_path):
    np.savez(tmp_path / "b.npz", x=np.zeros(2), y=np.zeros(2), t=np.zeros(2))
    with pytest.raises(ValueError, match="missing"):
        load_events(tmp_path / "b.npz")


def test_folder_dataset(tmp_path):
    for c, name in enumerate(["clap", "wave"]):
        (tmp_path / name).mkdir()
        for i in range(2):
            write_events(tmp_path / name / f"{i}.npz", x=[c], y=[i], t=[0], p=[1])
    ds = event_folder(tmp_path, T=3, height=2, width=2)
    assert len(ds) == 4
    frames, label = ds[3]          # wave/1.npz
    assert label.item() == 1 and frames.shape == (3, 2, 2, 2) and frames[0, 1, 1, 1] == 1
    with pytest.raises(FileNotFoundError, match="<class>"):
        event_folder(tmp_path / "none", T=3, height=2, width=2)


def test_direct_encode():
    x = torch.randn(2, 1, 4, 4)
    s = direct_encode(x, 3)
    assert s.shape == (3, 2, 1, 4, 4) and all(torch.equal(s[t], x) for t in range(3))
    with pytest.raises(ValueError, match="T"):
        direct_encode(x, 0)


def test_poisson_rate_and_generator():
    p = torch.tensor([0.0, 0.25, 1.0])
    s = poisson_encode(p.expand(4000, 3), T=5, generator=torch.Generator().manual_seed(1))
    assert s.shape == (5, 4000, 3) and set(s.unique().tolist()) <= {0.0, 1.0}
    rate = s.mean(dim=(0, 1))
    assert rate[0] == 0 and rate[2] == 1 and abs(rate[1].item() - 0.25) < 0.01
    again = poisson_encode(p.expand(4000, 3), T=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, again)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        poisson_encode(torch.tensor([1.5]), T=2)
