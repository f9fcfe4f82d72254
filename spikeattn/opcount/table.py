"""The default table of counting rules: aten's ops and spikeattn's own, ``{op or op name: rule}``.

Copy and extend it per call through ``count(..., extra_rules={op: fn})``.
"""

from __future__ import annotations

from spikeattn.opcount.rules import ATEN_RULES, RuleFn
from spikeattn.opcount.rules_project import PROJECT_RULES

RULES: dict[object, RuleFn] = {**ATEN_RULES, **PROJECT_RULES}
