"""summary.md's linear-mode-connectivity table (seed 002 Fig. 13): one row per method.

The barrier is the quantity the figure compares between vanilla, W-Asym and syre, so pooling the methods
into one median (what the generic per-experiment table would do) hides the result; here every method
(the run's syre option) and every other sweep setting gets its own row.
"""

from __future__ import annotations

from collections import defaultdict

from symexp.report.seed000 import median_range

LMC_KEYS = ("lmc/loss_barrier", "lmc/acc_barrier", "lmc/mid_acc", "test/acc")
METHOD_NAMES = {"off": "vanilla", "wfix": "W-Asym", "static_bias": "syre"}



def is_lmc_row(row: dict) -> bool:
    """A member row of an LMC run (it carries a loss barrier)."""
    return "lmc/loss_barrier" in row


def method(row: dict) -> str:
    """The run's method: the syre option of its resolved config (aggregate's syre_variant), else its syre=
    override, named as in the paper (vanilla / W-Asym / syre)."""
    variant = row.get("syre_variant")
    if not variant:
        overrides = dict(i.partition("=")[::2] for i in str(row.get("overrides") or "").split())
        variant = overrides.get("syre", "off")
    return METHOD_NAMES.get(str(variant), str(variant))


def _setting(row: dict, common: set[str]) -> str:
    """The row's sweep overrides other than its method, its seed and what every row shares."""
    items = str(row.get("overrides") or "").split()
    return " ".join(i for i in items if not i.startswith(("syre=", "seed=")) and i not in common)


def lmc_table(rows: list[dict]) -> list[str]:
    """One table per LMC experiment name, one row per (method, setting): median [min, max] over members."""
    ok = [r for r in rows if r.get("status") == "ok" and is_lmc_row(r)]
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in ok:
        by_name[str(r.get("name"))].append(r)
    out: list[str] = []
    order = list(METHOD_NAMES.values())
    for name, rs in sorted(by_name.items()):
        common = set.intersection(*(set(str(r.get("overrides") or "").split()) for r in rs))
        cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in rs:
            cells[(method(r), _setting(r, common))].append(r)
        shared = " ".join(sorted(i for i in common if not i.startswith(("syre=", "seed="))))
        out += [f"## {name}: linear mode connectivity per method, median [min, max] over members"
                + (f" ({shared})" if shared else ""), "",
                "| method | setting | n | seeds | " + " | ".join(LMC_KEYS) + " |",
                "|---|---|---|---|" + "---|" * len(LMC_KEYS)]
        for (meth, setting) in sorted(cells, key=lambda c: (order.index(c[0]) if c[0] in order else len(order), c)):
            group = cells[(meth, setting)]
            seeds = ", ".join(str(s) for s in sorted({r.get("seed") for r in group}, key=str))
            out.append(f"| {meth} | {setting or '–'} | {len(group)} | {seeds} | "
                       + " | ".join(median_range([r.get(k) for r in group]) for k in LMC_KEYS) + " |")
        out.append("")
    return out
