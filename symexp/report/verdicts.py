"""summary.md's verdict section: every ``verdict/*`` line a run wrote into its results.json (e.g. seed
004's mirror presets), verbatim with its job, so a sweep's summary says whether each claim held and at
which budget, not only the numbers behind it."""

from __future__ import annotations


def verdict_table(rows: list[dict]) -> list[str]:
    """One table row per (member row, verdict key); none when no run wrote a verdict."""
    found = [(r, k) for r in rows if r.get("status") == "ok" for k in sorted(r)
             if k.startswith("verdict/") and isinstance(r[k], str)]
    if not found:
        return []
    out = ["## Verdicts (each run's own, with the budget it ran at)", "",
           "| experiment | job | seed | claim | verdict |", "|---|---|---|---|---|"]
    for r, key in sorted(found, key=lambda f: (str(f[0].get("name")), str(f[0].get("job")), f[1])):
        text = r[key].replace("|", "/").replace("\n", " ")
        out.append(f"| {r.get('name')} | {r.get('job')} | {r.get('seed')} | {key.removeprefix('verdict/')} | {text} |")
    return out + [""]
