"""summary.md: one table per run family plus failed and diverged jobs, never silently dropped."""

from __future__ import annotations

import math


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "nan"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def summary_markdown(rows: list[dict]) -> str:
    lines = ["# symexp summary", "", f"{len(rows)} member rows."]
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        lines += ["", "## Failed or diverged", "", "| job | seed | status | error |", "|---|---|---|---|"]
        lines += [f"| {r.get('job')} | {r.get('seed')} | {r.get('status')} | {r.get('error') or ''} |" for r in bad]
    return "\n".join(lines) + "\n"
