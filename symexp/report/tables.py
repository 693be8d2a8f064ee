"""summary.md: seed 000's sections (symexp/report/seed000.py: the paper claims the rows test, separation
verdicts, Table 1, regimes, positive bias), seed 002's synthetic tables, a generic per-experiment table for
other families, and every failed or diverged job (never silently dropped)."""

from __future__ import annotations

import fnmatch
from collections import Counter, defaultdict

from symexp.report.lmc import is_lmc_row, lmc_table
from symexp.report.seed000 import _fmt, claims, is_symmetry_row, positive_bias, regime_counts, separation, table1
from symexp.report.verdicts import verdict_table
from symexp.stats import finite as _num
from symexp.stats import median_of


def _median(values: list) -> float | None:
    return median_of(values)


# seed 002's synthetic experiments: the metrics that decide each figure's claim (fnmatch patterns)
SYRE_KEYS = {
    "syre_ridge": ("ridge/closed_form_gap", "ridge/theta0_shift", "test/mse/d90", "test/mse/d100", "test/mse/d110",
                   "test/mse/d400"),
    "syre_reparam": ("sym/dead_coordinates", "test/mse", "train/loss"),
    "syre_symbench": ("sym/symmetry_degree", "train/objective", "train/objective_gap"),
    "syre_teacher_student": ("rank/covariance_rank/hidden", "rank/effective_rank/hidden", "rank/dead_units/hidden",
                             "test/loss", "train/loss"),
    "syre_two_layer": ("sym/distinct_neurons*", "train/loss", "train/acc", "test/acc"),
    "syre_fcn": ("train/acc", "test/acc", "rank/first_pre/cov_rank", "rank/first_post/cov_rank"),
}


def _syre_variant(r: dict) -> str:
    """The syre option from the resolved config (aggregate's syre_variant), else the syre= override."""
    if r.get("syre_variant"):
        return str(r["syre_variant"])
    over = str(r.get("overrides") or "")
    for item in over.split():
        if item.startswith("syre="):
            return item.split("=", 1)[1]
    return "preset"


def _natural(cell: str) -> tuple:
    """Sort key of a "variant\x00overrides" cell: numeric override values in numeric order (3.0 before 10.0)."""
    variant, rest = cell.split("\x00")
    vals = [i.partition("=")[2] for i in rest.split()]
    return tuple((0, f, "") if (f := _num(v)) is not None else (1, 0.0, v) for v in vals), variant


def syre_tables(rows: list[dict]) -> list[str]:
    """Seed 002's synthetic experiments: one row per sweep setting (its overrides), median over members
    of the metrics that decide the figure (SYRE_KEYS), so syre / vanilla / baselines sit side by side."""
    ok = [r for r in rows if r.get("status") == "ok" and str(r.get("name", "")).startswith("syre_")]
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in ok:
        by_name[str(r["name"])].append(r)
    out = []
    for name, rs in sorted(by_name.items()):
        present = {k for r in rs for k, v in r.items() if _num(v) is not None}
        pats = SYRE_KEYS.get(name, ())
        keys = sorted({k for k in present for p in pats if fnmatch.fnmatchcase(k, p)},
                      key=lambda k: next(i for i, p in enumerate(pats) if fnmatch.fnmatchcase(k, p)))
        if not keys:
            continue
        cells: dict[str, list[dict]] = defaultdict(list)
        common = set.intersection(*(set(str(r.get("overrides") or "").split()) for r in rs))  # e.g. budget=cpu
        for r in rs:
            rest = " ".join(i for i in str(r.get("overrides") or "").split()
                            if not i.startswith("syre=") and i not in common)
            cells[f"{_syre_variant(r)}\x00{rest}"].append(r)
        shared = " ".join(sorted(i for i in common if not i.startswith("syre=")))
        out += [f"## {name} (seed 002): median over members" + (f" ({shared})" if shared else ""), "",
                "| syre | setting | n | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
        for cell in sorted(cells, key=_natural):
            variant, rest = cell.split("\x00")
            group = cells[cell]
            out.append(f"| {variant} | {rest or '–'} | {len(group)} | "
                       + " | ".join(_fmt(_median([r.get(k) for r in group])) for k in keys) + " |")
        out.append("")
    return out


def generic(rows: list[dict]) -> list[str]:
    """Other experiment families: median of every numeric metric per experiment name."""
    other = [r for r in rows if r.get("status") == "ok" and not is_symmetry_row(r)
             and str(r.get("name", "")) not in SYRE_KEYS and not is_lmc_row(r)]
    if not other:
        return []
    skip = {"seed", "rank", "width", "depth"}
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in other:
        by_name[str(r.get("name"))].append(r)
    out = ["## Other experiments (median over members)", ""]
    for name, rs in sorted(by_name.items()):
        keys = sorted({k for r in rs for k, v in r.items() if "/" in k and k not in skip and _num(v) is not None})
        out += [f"### {name} ({len(rs)} members)", "", "| metric | median |", "|---|---|"]
        out += [f"| {k} | {_fmt(_median([r.get(k) for r in rs]))} |" for k in keys] + [""]
    return out


def failures(rows: list[dict]) -> list[str]:
    bad = [r for r in rows if r.get("status") != "ok"]
    if not bad:
        return ["## Failed or diverged", "", "None.", ""]
    out = ["## Failed or diverged", "", "| job | seed | status | error |", "|---|---|---|---|"]
    for r in bad:
        err = str(r.get("error") or "").replace("|", "/").replace("\n", " ")[:300]
        out.append(f"| {r.get('job')} | {r.get('seed')} | {r.get('status')} | {err} |")
    return out + [""]


def summary_markdown(rows: list[dict], figures: dict | None = None) -> str:
    jobs = {r.get("job") for r in rows}
    status = Counter(r.get("status") for r in rows)
    lines = [
        "# symexp summary",
        "",
        f"{len(jobs)} jobs, {len(rows)} member rows: " + ", ".join(f"{n} {s}" for s, n in status.most_common()) + ".",
        "",
    ]
    for section in (verdict_table, claims, separation, table1, regime_counts, positive_bias, syre_tables, lmc_table,
                    generic, failures):
        lines += section(rows)
    if figures:
        lines += ["## Figures", ""] + [f"- {name}: ![{name}]({path})" for name, path in figures.items()] + [""]
    return "\n".join(lines)
