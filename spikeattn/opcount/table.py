"""The default table of counting rules: aten's ops, torch's fused attention/RNN ops and spikeattn's own.

Copy and extend it per call through ``count(..., extra_rules={op: fn})``.
"""

from __future__ import annotations

from spikeattn.opcount.rules import ATEN_RULES, RuleFn
from spikeattn.opcount.rules_nn import NN_RULES
from spikeattn.opcount.rules_project import PROJECT_RULES

RULES: dict[object, RuleFn] = {**ATEN_RULES, **NN_RULES, **PROJECT_RULES}
