"""The papers' numbers a run or a panel is compared with, as ``paper/<metric>`` keys.

Only values a paper states go here: seed 000's Table 1 (test MSE, output defect, active partial defect
per data set and rank, and the matched MLP's numbers quoted in its section 3). A training run logs its
cell's values at its first and last step, so line plots draw each as a horizontal reference line."""

from __future__ import annotations

from symexp.report.aggregate import _config_fields
from symexp.report.tables import PAPER_TABLE1, RFLR_KEYS

PREFIX = "paper/"


def paper_values(config: dict | None) -> dict[str, float]:
    """The paper's numbers for a run's resolved config (empty when the paper states none for its cell)."""
    fields = _config_fields(config or {})
    if fields["sampling"] not in (None, "uniform"):
        return {}
    rank = fields["rank"] if fields["model"] == "rflr" else None
    row = PAPER_TABLE1.get((fields["data"], fields["model"], rank))
    if not row:
        return {}
    return {PREFIX + key: float(v) for key, v in zip(RFLR_KEYS, row) if v is not None}
