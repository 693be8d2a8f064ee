"""Seed 002's Figure 6: effective rank of the policy's last hidden layer and episode return against
environment steps, mean and spread over seeds per variant (vanilla PPO, PPO+L2, PPO+syre), with the
parameter (friction) changes marked.

Every PPO job writes ``curves.csv`` and ``parameter_changes.csv`` in its job folder; this module reads
them below a sweep folder: ``python -m symexp.report.ppo_figure DIR [--out PNG]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from symexp.figstyle import DPI, looks, plt, save, style, styled

PANELS = (
    ("effective_rank_pct", "effective rank (% of width)"),
    ("abs_approx_rank_pct", "abs approximate rank (% of width)"),
    ("return", "episode return"),
)
LABELS = {"vanilla": "PPO", "l2": "PPO+L2", "syre": "PPO+syre"}


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """NaN-aware trailing moving average (iterations without a finished episode hold NaN)."""
    y = np.asarray(y, dtype=float)
    if window <= 1:
        return y
    out = np.full_like(y, np.nan)
    for i in range(len(y)):
        seg = y[max(0, i - window + 1): i + 1]
        seg = seg[np.isfinite(seg)]
        if seg.size:
            out[i] = seg.mean()
    return out


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", "nan") else np.nan for r in rows]) for k in rows[0]}


def _mark_changes(ax, steps) -> None:
    """Dashed verticals at the parameter (friction) changes, named once in the legend."""
    for i, s in enumerate(s for s in steps if s > 0):
        ax.axvline(s, color="0.6", lw=0.7, ls="--", zorder=0, label="parameter change" if i == 0 else None)


def _variant(name: str) -> str:
    return name.rsplit("_", 1)[-1] if name else "run"


def variant_label(variant: str) -> str:
    """Legend and table text: 'syre-sigma0.1' (a run named ``ppo_..._syre-sigma0.1``) -> 'PPO+syre (sigma0.1)'."""
    base, _, extra = variant.partition("-")
    if base not in LABELS:
        return variant
    return f"{LABELS[base]} ({extra})" if extra else LABELS[base]


@styled
def plot_single_run(curves: dict, changes, path: Path, title: str | None = None, window: int = 5) -> Path:
    """One run's rank and return curves (the per-job figure)."""
    x = np.asarray(curves["env_step"], dtype=float)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 3.4))
    for ax, (key, text) in zip(axes, PANELS):
        y = np.asarray(curves[key], dtype=float)
        ax.plot(x, smooth(y, window if key == "return" else 1), color=style("method", "syre")["color"])
        _mark_changes(ax, [c[0] for c in changes])
        ax.set(xlabel="environment steps", ylabel=text + (f" ({window}-iteration mean)" if key == "return" else ""))
    if axes[-1].get_legend_handles_labels()[0]:
        axes[-1].legend()
    if title:
        fig.suptitle(title)
    return save(fig, path)


SKIPPED = "skipped"  # key of collect_runs' result that lists job folders left out, with why


def collect_runs(root: Path) -> dict[str, list[dict]]:
    """variant -> runs (curves, change steps and values, end metrics) for every finished job folder below root
    with a curves.csv. A job whose results.json is not "ok" (failed, diverged, interrupted), or that started
    (fingerprint.json) but wrote no results.json yet, is left out and listed under ``SKIPPED`` as
    "folder: why", so partial curves never shorten or bias the means."""
    runs: dict[str, list[dict]] = defaultdict(list)
    for curves_path in sorted(root.rglob("curves.csv")):
        job = curves_path.parent
        name, seed, res = job.name, None, {}
        if (job / "results.json").exists():
            res = json.loads((job / "results.json").read_text())
            name, seed = res.get("name") or name, res.get("seed")
            if res.get("status", "ok") != "ok":
                runs[SKIPPED].append(f"{job.relative_to(root)}: status {res.get('status')}")
                continue
        elif (job / "fingerprint.json").exists():
            runs[SKIPPED].append(f"{job.relative_to(root)}: no results.json yet (running or killed)")
            continue
        curves = _read_csv(curves_path)
        if not curves:
            continue
        changes = _read_csv(job / "parameter_changes.csv") if (job / "parameter_changes.csv").exists() else {}
        runs[_variant(name)].append({"name": name, "seed": seed, "curves": curves, "metrics": res.get("metrics", {}),
                                     "change_every": (res.get("config") or {}).get("data", {}).get("change_every"),
                                     "changes": list(changes.get("env_step", [])),
                                     "values": list(changes.get("value", []))})
    return dict(runs)


def sem(values, axis: int | None = None) -> np.ndarray:
    """Standard error of the mean over seeds, NaNs left out: sample standard deviation (ddof 1) / sqrt(n);
    NaN where fewer than two seeds have a value."""
    a = np.asarray(values, dtype=float)
    count = np.isfinite(a).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fewer than two values: NaN, as documented
        return np.where(count > 1, np.nanstd(a, axis, ddof=1) / np.sqrt(np.maximum(count, 1)), np.nan)


def aggregate(runs: list[dict], key: str, window: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean and standard error over seeds (0 where one seed has a value), on the shortest common grid."""
    n = min(len(r["curves"]["env_step"]) for r in runs)
    x = runs[0]["curves"]["env_step"][:n]
    ys = np.stack([smooth(r["curves"][key][:n], window) for r in runs])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns where no seed has a value yet stay NaN
        mean = np.nanmean(ys, 0) if np.isfinite(ys).any() else np.full(n, np.nan)
    return x, mean, np.nan_to_num(sem(ys, 0), nan=0.0)


@styled
def plot_sweep(root: Path, out: Path | None = None, window: int = 5, title: str | None = None,
               dpi: int = DPI) -> Path:
    """Figure 6 for every variant found below root; returns the PNG path (root/ppo_figure6.png, with
    ppo_figure6.pdf beside it). ``dpi`` trades size for detail (the PDF is vector either way)."""
    runs = collect_runs(Path(root))
    runs.pop(SKIPPED, None)
    if not runs:
        raise FileNotFoundError(f"no finished PPO run (curves.csv) below {root}: run a PPO preset or sweep first")
    out = Path(out) if out else Path(root) / "ppo_figure6.png"
    fig, axes = plt.subplots(1, len(PANELS), figsize=(14, 3.6))
    change_steps = sorted({s for rs in runs.values() for s in rs[0]["changes"]})
    variant_looks = looks("method", runs)
    for ax, (key, text) in zip(axes, PANELS):
        for variant, rs in sorted(runs.items()):
            x, mean, sem = aggregate(rs, key, window if key == "return" else 1)
            look = variant_looks[variant]
            ax.plot(x, mean, label=f"{variant_label(variant)} ({len(rs)} seed{'s' if len(rs) != 1 else ''})", color=look["color"],
                    marker=look["marker"], markevery=max(len(x) // 8, 1))
            ax.fill_between(x, mean - sem, mean + sem, alpha=0.25, color=look["color"], lw=0)
        _mark_changes(ax, change_steps)
        ax.set(xlabel="environment steps", ylabel=text + (f" ({window}-iteration mean)" if key == "return" else ""))
    axes[-1].legend()
    fig.suptitle(title or f"Loss of plasticity: {Path(root).name}; mean and standard error over seeds")
    return save(fig, out, dpi=dpi)


def _phase_mean(run: dict, key: str, which: str) -> float:
    """Mean of a curve over the first or the last phase (between parameter changes)."""
    x, y = run["curves"]["env_step"], run["curves"][key]
    cuts = [c for c in run["changes"] if c > 0]
    if which == "first":
        mask = x <= (cuts[0] if cuts else x[-1])
    else:
        mask = x > (cuts[-1] if cuts else x[0] - 1)
    vals = y[mask & np.isfinite(y)]
    return float(vals.mean()) if vals.size else float("nan")


def _mean_text(vals: list[float], fmt: str) -> str:
    """Mean over seeds of the finite values; "n/a" where no seed has one (e.g. no episode ended in that phase)."""
    finite = [v for v in vals if np.isfinite(v)]
    return f"{np.mean(finite):{fmt}}" if finite else "n/a"


def _budget_line(runs: dict[str, list[dict]]) -> str:
    """The budget every number below ran at: env steps, changes and their schedule, seeds."""
    every = [r for rs in runs.values() for r in rs]
    steps = [float(r["curves"]["env_step"][-1]) for r in every]
    changes = [len([c for c in r["changes"] if c > 0]) for r in every]
    sched = sorted({r["change_every"] for r in every if r["change_every"]})
    seeds = sorted({r["seed"] for r in every if r["seed"] is not None})
    def span(vals: list[float]) -> str:
        return f"{min(vals):.0f}" if min(vals) == max(vals) else f"{min(vals):.0f}-{max(vals):.0f}"

    return (f"Budget: {len(every)} runs, seeds {', '.join(map(str, seeds)) or '?'}; "
            f"{span(steps)} env steps per run; {span(changes)} parameter changes "
            f"per run (one every {', '.join(f'{c:g}' for c in sched) or '?'} env steps, at the next episode end).")


def _per_seed_table(runs: dict[str, list[dict]]) -> list[str]:
    variants = sorted(runs)
    seeds = sorted({r["seed"] for rs in runs.values() for r in rs if r["seed"] is not None})
    if not seeds:
        return []
    lines = ["Per seed, at the end of the run: final return (mean of the last 10% of episodes) / abs approx rank % / "
             "dead units; the seed also draws the parameter sequence, so a row shares it across variants.", "",
             "| seed | parameters | " + " | ".join(variant_label(v) for v in variants) + " |",
             "|---:|---|" + "---|" * len(variants)]
    for seed in seeds:
        cells, values = [], ""
        for v in variants:
            run = next((r for r in runs[v] if r["seed"] == seed), None)
            if run is None:
                cells.append("-")
                continue
            shown = run["values"][:5]
            values = values or (" -> ".join(f"{x:.3g}" for x in shown)
                                + (f" -> ... ({len(run['values'])} values)" if len(run["values"]) > len(shown) else ""))
            m = run["metrics"]
            cells.append(f"{m.get('train/return_final', float('nan')):.0f} / "
                         f"{m.get('rank/abs_approx_rank_pct', float('nan')):.0f} / {m.get('rank/dead_units', float('nan')):.0f}")
        lines.append(f"| {seed} | {values or '-'} | " + " | ".join(cells) + " |")
    return lines


def _paired_lines(runs: dict[str, list[dict]]) -> list[str]:
    """Same-seed differences in the last phase: the seed fixes the parameter sequence, so pairs cancel it."""
    out = []
    others = [v for v in sorted(runs) if v not in ("l2", "vanilla")]
    for a, b in [(v, ref) for v in others for ref in ("l2", "vanilla")] + [("l2", "vanilla")]:
        if a not in runs or b not in runs:
            continue
        by_seed = {r["seed"]: r for r in runs[b]}
        pairs = [(r, by_seed[r["seed"]]) for r in runs[a] if r["seed"] in by_seed]
        if not pairs:
            continue
        parts = []
        for key, text, fmt in (("abs_approx_rank_pct", "abs approx rank", ".1f"), ("dead_units", "dead units", ".1f"),
                               ("return", "return", ".0f")):
            d = np.array([_phase_mean(x, key, "last") - _phase_mean(y, key, "last") for x, y in pairs])
            d = d[np.isfinite(d)]
            if d.size:
                parts.append(f"{text} {np.mean(d):+{fmt}} (higher in {int((d > 0).sum())} of {d.size} seeds)")
        out.append(f"- {variant_label(a)} minus {variant_label(b)}, last phase, same seed: " + "; ".join(parts))
    return out


def summary_table(root: Path) -> str:
    """Markdown: the budget; per variant, mean over seeds of rank, dead units and return in the first vs last
    phase (last phase +- standard error over seeds); per-seed end values; same-seed differences."""
    runs = collect_runs(Path(root))
    skipped = runs.pop(SKIPPED, [])
    if not runs:
        raise FileNotFoundError(f"no finished PPO run (curves.csv) below {root}: run a PPO preset or sweep first")
    head = ("| variant | seeds | changes | eff. rank % first -> last phase | abs approx rank % first -> last | "
            "dead units first -> last | return first -> last phase |")
    lines = [_budget_line(runs), "", "Mean over seeds; the last phase +- its standard error over seeds.", "",
             head, "|---|---:|---:|---|---|---|---|"]
    for variant, rs in sorted(runs.items()):
        def pair(key: str, fmt: str = ".1f", rs: list = rs) -> str:
            first = [_phase_mean(r, key, "first") for r in rs]
            last = [_phase_mean(r, key, "last") for r in rs]
            err = float(sem(last))
            return f"{_mean_text(first, fmt)} -> {_mean_text(last, fmt)}" + (f" +- {err:{fmt}}" if np.isfinite(err) else "")

        changes = np.mean([len([c for c in r["changes"] if c > 0]) for r in rs])
        lines.append(f"| {variant} | {len(rs)} | {changes:.1f} | {pair('effective_rank_pct')} | "
                     f"{pair('abs_approx_rank_pct')} | {pair('dead_units')} | {pair('return', '.0f')} |")
    skipped = [f"Left out ({len(skipped)}): " + "; ".join(skipped) + "."] if skipped else []
    for block in (_per_seed_table(runs), _paired_lines(runs), skipped):
        if block:
            lines += [""] + block
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m symexp.report.ppo_figure", description=__doc__)
    parser.add_argument("dir", type=Path, help="a sweep folder (or any folder) holding PPO job folders")
    parser.add_argument("--out", type=Path, default=None, help="output PNG (default DIR/ppo_figure6.png)")
    parser.add_argument("--window", type=int, default=5, help="iterations in the return's moving average")
    parser.add_argument("--dpi", type=int, default=DPI, help="PNG resolution (a vector PDF is written beside it)")
    parser.add_argument("--title", default=None, help="figure title (default: the folder's name)")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a folder")
    print(plot_sweep(args.dir, args.out, args.window, args.title, args.dpi))
    table = summary_table(args.dir)
    (args.dir / "ppo_summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
