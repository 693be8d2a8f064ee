"""The end-of-run results table: one row per member (and the median), the task's headline metrics as columns."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

# Tasks that do not declare headline metrics: test metrics, the symmetry defects and the regime (seed 000).
DEFAULT_HEADLINE = ("test/*", "sym/output*", "sym/partial_defect*", "sym/mirror*", "regime")
_DEFAULT_EXCLUDE = ("*/block*", "sym/output_defect/*")


def headline_keys(summary: dict, patterns: Sequence[str] | None = None) -> list[str]:
    """The summary keys matching the task's headline patterns (fnmatch), in the summary's order."""
    if patterns is None:
        patterns, exclude = DEFAULT_HEADLINE, _DEFAULT_EXCLUDE
    else:
        exclude = ()
    return [k for k in summary if any(fnmatch.fnmatchcase(k, p) for p in patterns)
            and not any(fnmatch.fnmatchcase(k, e) for e in exclude)]


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or not math.isfinite(value):
        return "nan"
    return f"{value:.3g}"


def print_table(name: str, members: list[dict], summary: dict, headline: Sequence[str] | None = None) -> None:
    """The results table printed at the end of every run."""
    from rich.console import Console
    from rich.table import Table

    keys = headline_keys(summary, headline)
    table = Table(title=f"symexp results: {name}")
    table.add_column("seed")
    table.add_column("status")
    for key in keys:
        table.add_column(key, justify="right")
    for m in members:
        table.add_row(str(m["seed"]), m["status"], *[_fmt(m["metrics"].get(k)) for k in keys])
    if len(members) > 1:
        table.add_row("median", "", *[_fmt(summary.get(k)) for k in keys])
    Console(width=200).print(table)
