"""Operation and energy counting: dense MACs, synaptic ops, spike x spike matmuls, neuron updates, bytes.

``count(model, x)`` runs the model once under a dispatch mode and returns an ``OpReport`` (plain
data; ``report.neurobench()`` gives NeuroBench 2.3's metrics); ``count_loader(model, loader)`` adds
up the batches of a loader; ``compare_ann(model, x)`` counts it next to its ANN twin; ``RULES`` is
the table {op or op name: rule} (extend it per call with ``extra_rules``); energy profiles
are TOML files in ``hardware/profiles`` (``list_profiles()``, ``load_profile(name_or_path)``).
"""

from spikeattn.opcount.ann import AnnComparison, ann_twin, compare_ann
from spikeattn.opcount.counter import NEURON_TYPES, UncountedOpWarning, count
from spikeattn.opcount.loader import count_loader
from spikeattn.opcount.profiles import Profile, list_profiles, load_profile
from spikeattn.opcount.report import OpReport
from spikeattn.opcount.rules import OpCount, OperandContext
from spikeattn.opcount.table import RULES

__all__ = ["count", "count_loader", "compare_ann", "OpReport", "AnnComparison", "ann_twin", "RULES", "OpCount",
           "OperandContext", "NEURON_TYPES", "UncountedOpWarning", "Profile", "list_profiles", "load_profile"]
