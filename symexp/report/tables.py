"""summary.md: seed 000's Table 1 with the paper's numbers beside ours, regime counts in the paper's
form, the RF-LR vs MLP separation verdict, the positive-bias summary, a generic per-experiment table for
other families, and every failed or diverged job (never silently dropped)."""

from __future__ import annotations

import fnmatch
import math
import statistics
from collections import Counter, defaultdict

from symexp.stats import median_of
from symexp.symmetry.regime import REGIMES

# seed 000, Table 1 (test MSE, D_out, active D_p) and the matched-MLP numbers quoted in section 3.
PAPER_TABLE1 = {
    ("gauss2d", "rflr", 8): (1.20e-5, 6.91e-5, 6.62e-4),
    ("quad2d", "rflr", 8): (2.17e-5, 7.80e-5, 9.98e-4),
    ("quad3d", "rflr", 8): (1.92e-4, 9.76e-4, 1.81e-3),
    ("quad2d", "rflr", 128): (1.60e-4, 3.07e-4, 1.37e-2),
    ("quad3d", "rflr", 128): (2.52e-4, 1.27e-3, 7.38e-3),
    ("quad2d", "mlp", None): (7.5e-5, None, 2.4e-1),
}
RFLR_KEYS = ("test/mse", "sym/output_defect", "sym/partial_defect")


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(v) -> str:
    f = _num(v)
    return "–" if f is None else f"{f:.3g}"


def _mean_spread(values: list) -> str:
    vals = [f for f in (_num(v) for v in values) if f is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.3g}"
    return f"{statistics.fmean(vals):.3g} ± {statistics.stdev(vals):.2g}"


def _median(values: list) -> float | None:
    return median_of(values)


def _is_symmetry_row(r: dict) -> bool:
    return r.get("model") in ("rflr", "mlp") and _num(r.get("test/mse")) is not None


def _cell(r: dict) -> tuple:
    return (r.get("data"), r.get("model"), r.get("rank") if r.get("model") == "rflr" else None, r.get("sampling"))


def table1(rows: list[dict]) -> list[str]:
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("status") == "ok" and _is_symmetry_row(r):
            cells[_cell(r)].append(r)
    if not cells:
        return []
    out = [
        "## Table 1 (seed 000): mean ± std over seeds; paper values in brackets",
        "",
        "| data | model | rank | sampling | n | test MSE | D_out | active D_p | mirror mismatch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
        data, model, rank, sampling = key
        rs = cells[key]
        paper = PAPER_TABLE1.get((data, model, rank)) if sampling in (None, "uniform") else None
        vals = []
        for i, k in enumerate(RFLR_KEYS):
            text = _mean_spread([r.get(k) for r in rs])
            if paper and paper[i] is not None:
                text += f" [{paper[i]:.3g}]"
            vals.append(text)
        mm = _mean_spread([r.get("sym/mirror_mismatch") for r in rs])
        out.append(f"| {data} | {model} | {rank if rank is not None else '–'} | {sampling} | {len(rs)} | "
                   + " | ".join(vals) + f" | {mm} |")
    return out + [""]


def regime_counts(rows: list[dict]) -> list[str]:
    by_model: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r.get("model") in ("rflr", "mlp") and (r.get("regime") or r.get("status") == "diverged"):
            by_model[r["model"]][r.get("regime") or "diverged"] += 1
    if not by_model:
        return []
    out = ["## Regimes", ""]
    for model, counts in sorted(by_model.items()):
        total = sum(counts.values())
        parts = ", ".join(f"{counts[g]} {g}" for g in REGIMES if counts[g])
        out.append(f"- {model}: {total} runs: {parts}")
    return out + [""]


def _block_profile(rows: list[dict], cell: tuple) -> str:
    """Median active partial defect of every hidden block, because the paper does not say which MLP layer it reads."""
    keys = sorted({k for r in rows if _cell(r) == cell for k in r if k.startswith("sym/partial_defect/block")},
                  key=lambda k: int(k.rsplit("block", 1)[1]))
    values = [_median([r.get(k) for r in rows if _cell(r) == cell]) for k in keys]
    return " / ".join("–" if v is None else f"{v:.3g}" for v in values) or "–"


def separation(rows: list[dict]) -> list[str]:
    """Seed 000's claim: RF-LR rank 8 has lower active partial defect than the matched MLP on each target."""
    ok = [r for r in rows if r.get("status") == "ok" and _is_symmetry_row(r)]
    targets = sorted({(r.get("data"), r.get("sampling")) for r in ok}, key=str)
    out = []
    for data, sampling in targets:
        rf = _median([r.get("sym/partial_defect") for r in ok if _cell(r) == (data, "rflr", 8, sampling)])
        mlp = _median([r.get("sym/partial_defect") for r in ok if _cell(r) == (data, "mlp", None, sampling)])
        if rf is None or mlp is None:
            continue
        holds = rf < mlp
        if holds:
            factor = f"the MLP's is {mlp / rf:.3g}x RF-LR's" if rf > 0 else "RF-LR's is exactly 0"
        else:
            factor = f"RF-LR's is {rf / mlp:.3g}x the MLP's" if mlp > 0 else "the MLP's is exactly 0"
        verdict = "holds" if holds else "does NOT hold"
        out.append(f"- {data} ({sampling}): separation {verdict}: RF-LR rank 8 median active D_p {rf:.3g} vs "
                   f"MLP {mlp:.3g} ({factor}); per hidden block, first to last: "
                   f"RF-LR {_block_profile(ok, (data, 'rflr', 8, sampling))}, "
                   f"MLP {_block_profile(ok, (data, 'mlp', None, sampling))}")
    return (["## RF-LR vs matched MLP (active partial defect)", "", *out, ""]) if out else []


def positive_bias(rows: list[dict], mse_max: float = 5e-3) -> list[str]:
    pb = [r for r in rows if r.get("status") == "ok" and r.get("sampling") == "positive_bias" and _is_symmetry_row(r)]
    if not pb:
        return []
    out = [f"## Positive-bias stress test (low-loss runs: test MSE <= {mse_max:g})", ""]
    dims = defaultdict(list)
    for r in pb:
        dims[str(r.get("data"))[-2:]].append(r.get("data/mirror_distance"))
    out.append("Mean nearest-mirror distance of the training sets: "
               + ", ".join(f"{d}: {_fmt(_median(v))}" for d, v in sorted(dims.items()))
               + " (seed 000: 0.22 in 2D, 0.54-0.60 in 3D).")
    out += ["", "| model | n low-loss | median test MSE | median active D_p |", "|---|---|---|---|"]
    for label, pick in (("RF-LR rank 8", ("rflr", 8)), ("RF-LR rank 128", ("rflr", 128)), ("MLP", ("mlp", None))):
        sel = [r for r in pb if (r.get("model"), r.get("rank") if r.get("model") == "rflr" else None) == pick]
        low = [r for r in sel if (_num(r.get("test/mse")) or math.inf) <= mse_max]
        out.append(f"| {label} | {len(low)}/{len(sel)} | {_fmt(_median([r.get('test/mse') for r in low]))} | "
                   f"{_fmt(_median([r.get('sym/partial_defect') for r in low]))} |")
    return out + ["", "seed 000: MLP 3.28e-4 / 1.30; RF-LR rank 8 3.59e-4 / 1.13e-2; rank 128 2.93e-4 / 6.57e-3.", ""]


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
    over = str(r.get("overrides") or "")
    for item in over.split():
        if item.startswith("syre="):
            return item.split("=", 1)[1]
    return str(r.get("syre_variant") or "preset")


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
    other = [r for r in rows if r.get("status") == "ok" and not _is_symmetry_row(r)
             and str(r.get("name", "")) not in SYRE_KEYS]
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
    for section in (separation, table1, regime_counts, positive_bias, syre_tables, generic, failures):
        lines += section(rows)
    if figures:
        lines += ["## Figures", ""] + [f"- {name}: ![{name}]({path})" for name, path in figures.items()] + [""]
    return "\n".join(lines)
