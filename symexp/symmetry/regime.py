"""Functional regimes of seed 000 from configurable thresholds on test MSE and active partial defect."""

from __future__ import annotations

import math

REGIMES = ("partial-symmetric", "output-only", "intermediate", "underfit", "diverged")


def classify(
    test_mse: float,
    partial_defect: float,
    status: str = "ok",
    mse_max: float = 5e-3,
    partial_low: float = 1e-3,
    partial_high: float = 1e-1,
) -> str:
    """underfit: test MSE above mse_max; otherwise by the active partial defect: partial-symmetric below
    partial_low, output-only (low loss, asymmetric inside) above partial_high, intermediate between."""
    if status == "diverged" or not math.isfinite(test_mse):
        return "diverged"
    if test_mse > mse_max:
        return "underfit"
    if not math.isfinite(partial_defect):
        return "intermediate"
    if partial_defect <= partial_low:
        return "partial-symmetric"
    if partial_defect >= partial_high:
        return "output-only"
    return "intermediate"
