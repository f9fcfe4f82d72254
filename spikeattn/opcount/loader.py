"""``count_loader``: the counter over the batches of a data loader, accumulated into one report."""

from __future__ import annotations

from tqdm.auto import tqdm

from spikeattn.opcount.counter import count
from spikeattn.opcount.report import OpReport


def count_loader(model, loader, max_batches: int | None = None, *, progress: bool = True, extra_rules=None,
                 neuron_types=None, **forward_kwargs) -> OpReport:
    """Count ``model`` on every batch of ``loader`` (or the first ``max_batches``) and add the counts up.

    Each batch is counted as by ``count(model, inputs)`` (from rest, buffers restored), where
    ``inputs`` is the batch itself or, for a ``(inputs, targets, ...)`` tuple or list, its first
    element; its leading dim is the batch's number of samples (NeuroBench's convention), so
    ``report.neurobench()`` is per sample over the whole loader.

    Args:
        model: any ``nn.Module``.
        loader: an iterable of batches (a ``torch.utils.data.DataLoader``).
        max_batches: stop after this many batches; None = all.
        progress: show a tqdm progress bar.
        extra_rules, neuron_types, **forward_kwargs: as ``count``.

    Returns:
        ``OpReport`` equal to ``OpReport.sum`` of the per-batch reports.

    Example:
        >>> report = count_loader(model, DataLoader(test_set, batch_size=64), max_batches=10)
        >>> report.neurobench()["SynapticOperations"]["Effective_ACs"]   # per sample
    """
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int)
                                    or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    try:
        total = len(loader)
    except TypeError:
        total = None
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    reports = []
    for batch in tqdm(loader, total=total, disable=not progress, desc="counting", unit="batch"):
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        reports.append(count(model, inputs, extra_rules=extra_rules, neuron_types=neuron_types, **forward_kwargs))
        if len(reports) == max_batches:
            break
    if not reports:
        raise ValueError("loader gave no batches to count")
    return OpReport.sum(reports)
