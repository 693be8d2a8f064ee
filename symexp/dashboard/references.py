"""The papers' numbers a run or a panel is compared with, as ``paper/<metric>`` keys.

Only values a paper states go here: seed 000's Table 1 (test MSE, output defect, active partial defect
per data set and rank, and the matched MLP's numbers quoted in its section 3) and seed 002's Table 1
(SimCLR on CIFAR-100: the last layer's low-rankness and the linear-probe accuracies, vanilla and syre).
A training run logs its cell's values at its first and last step, so line plots draw each as a
horizontal line and its summary holds each beside the run's own value."""

from __future__ import annotations

from symexp.report.aggregate import _config_fields, _syre_variant
from symexp.report.seed000 import PAPER_TABLE1, RFLR_KEYS

PREFIX = "paper/"

# seed 002, Table 1: (syre variant, sigma0, layers syre acts on) -> (low-rankness, penultimate acc, last acc)
PAPER_SIMCLR = {
    ("off", None, None): (0.70, 0.468, 0.222),
    ("static_bias", 0.1, "head"): (0.0, 0.468, 0.317),
    ("static_bias", 0.01, "head"): (0.0, 0.462, 0.325),
    ("static_bias", 0.1, "all"): (0.0, 0.446, 0.307),
    ("static_bias", 0.01, "all"): (0.0, 0.454, 0.324),
}
SIMCLR_KEYS = ("rank/last/low_rankness", "probe/penultimate_acc", "probe/last_acc")


def _seed000(config: dict) -> dict[str, float]:
    fields = _config_fields(config)
    if fields["sampling"] not in (None, "uniform"):
        return {}
    rank = fields["rank"] if fields["model"] == "rflr" else None
    row = PAPER_TABLE1.get((fields["data"], fields["model"], rank))
    return {key: float(v) for key, v in zip(RFLR_KEYS, row) if v is not None} if row else {}


def _simclr(config: dict) -> dict[str, float]:
    task, data = config.get("task") or {}, config.get("data") or {}
    if not str(task.get("_target_", "")).endswith("SimCLRTask") or data.get("source") != "cifar100":
        return {}
    syre = config.get("syre") or {}
    variant = _syre_variant(syre)
    if variant == "off":
        cell = ("off", None, None)
    else:
        sigma0 = syre.get("sigma0")
        cell = (variant, None if sigma0 is None else float(sigma0), "all" if list(syre.get("include") or []) == ["*"]
                else "head")
    row = PAPER_SIMCLR.get(cell)
    return dict(zip(SIMCLR_KEYS, row)) if row else {}


def paper_values(config: dict | None) -> dict[str, float]:
    """The paper's numbers for a run's resolved config (empty when the paper states none for its setting)."""
    config = config or {}
    return {PREFIX + k: v for k, v in {**_seed000(config), **_simclr(config)}.items()}
