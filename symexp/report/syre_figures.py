"""Seed 002's synthetic figures across the jobs of a sweep, drawn from summary rows (median over members):
Fig. 4 (degree of symmetry against the objective, per method, unstructured and structured B), Fig. 2 / 7
(covariance rank against input dimension / noise), Fig. 5 (accuracy and first-layer rank against gamma or
alpha), Fig. 1 (final loss and distinct neurons against the identical fraction), Fig. 3 right (dead
coordinates over training, from each job's figures/curves.json). Per-job figures (ridge double descent,
spectra, training curves) stay in the job folders."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from symexp.figstyle import label, legend_if_any, plt, save, style, styled
from symexp.report.figures import _f
from symexp.stats import median_of

VARIANT_NAMES = {"off": "syre off", "preset": "the preset's syre"}
# name -> metrics drawn against the swept numeric override
LINE_METRICS = {
    "syre_teacher_student": ("rank/covariance_rank/hidden", "test/loss"),
    "syre_fcn": ("train/acc", "test/acc", "rank/first_pre/cov_rank", "rank/first_post/cov_rank"),
    "syre_two_layer": ("train/loss", "test/acc", "sym/distinct_neurons"),
}


def _overrides(r: dict) -> dict[str, str]:
    return dict(i.split("=", 1) for i in str(r.get("overrides") or "").split() if "=" in i)


def _variant(r: dict) -> str:
    """The syre option, read from the resolved config (the command line may not name it)."""
    return str(r.get("syre_variant") or _overrides(r).get("syre") or "preset")


def _median(vals: list) -> float:
    m = median_of(vals)
    return math.nan if m is None else m


def _method(r: dict) -> str:
    """Fig. 4's method of a symbench job: syre, weight decay, W-fix, dropout or vanilla GD, from the resolved
    config (weight decay set by the preset is weight decay, though no override names it)."""
    v = _variant(r)
    if v == "wfix":
        return "W-fix"
    if v in ("static_bias", "advanced", "offset"):
        return "syre"
    if v in ("perturb_only", "anchor_only"):
        return v.replace("_", " ")
    if _f(r.get("dropout") or 0) > 0:
        return "dropout"
    if _f(r.get("weight_decay") or 0) > 0:
        return "weight decay"
    return "vanilla"


def _variant_text(v: str) -> str:
    return VARIANT_NAMES.get(v, f"syre={v}")


@styled
def symbench_figure(rows: list[dict], path: Path) -> Path | None:
    """Degree of symmetry against the objective per method, unstructured and structured B."""
    rs = [r for r in rows if r.get("name") == "syre_symbench"]
    if not rs:
        return None
    methods = ("syre", "weight decay", "W-fix", "dropout", "vanilla", "perturb only", "anchor only")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
    for ax, structure in zip(axes[0], ("unstructured", "structured")):
        sel = [r for r in rs if _overrides(r).get("model.structure", "unstructured") == structure]
        for method in methods:
            pts = [(_f(r.get("train/objective")), _f(r.get("sym/symmetry_degree"))) for r in sel if _method(r) == method]
            if pts:
                look = style("method", method)
                ax.scatter(*zip(*pts), s=14, c=look["color"], marker=look["marker"], label=method, alpha=0.8)
        ax.set(title=f"{structure} B", xlabel=label("train/objective"), ylabel=label("sym/symmetry_degree"))
        legend_if_any(ax)  # a structure with no finished runs has nothing to label
    return save(fig, path)


@styled
def line_figure(rows: list[dict], name: str, path: Path) -> Path | None:
    """Median metric against the one numeric override that varies, a line per (variant, other settings)."""
    rs = [r for r in rows if r.get("name") == name]
    metrics = [m for m in LINE_METRICS.get(name, ()) if any(not math.isnan(_f(r.get(m))) for r in rs)]
    if not rs or not metrics:
        return None
    keys = {k for r in rs for k in _overrides(r) if k != "syre"}
    numeric = sorted(k for k in keys if len({_overrides(r).get(k) for r in rs}) > 1
                     and all(not math.isnan(_f(_overrides(r).get(k))) for r in rs))
    if not numeric:
        return None
    x_key = numeric[0]
    same = {k for k in keys if len({_overrides(r).get(k) for r in rs}) == 1}  # e.g. budget=cpu: not a series
    series: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rs:
        o = _overrides(r)
        rest = " ".join(f"{k}={o[k]}" for k in sorted(o) if k not in ("syre", x_key) and k not in same)
        series[_variant_text(_variant(r)) + (f", {rest}" if rest else "")][_f(o[x_key])].append(r)
    variants = {text: v for v in {_variant(r) for r in rs} for text in [_variant_text(v)]}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for i, (text, pts) in enumerate(sorted(series.items())):
            xs = sorted(pts)
            look = style("method", variants.get(text.split(",")[0], text))
            ax.plot(xs, [_median([r.get(m) for r in pts[x]]) for x in xs], marker=look["marker"], ms=3, label=text,
                    color=look["color"] if len(series) <= len(variants) else f"C{i % 10}")
        pos = [x for pts in series.values() for x in pts if x > 0]
        if pos and max(pos) / min(pos) >= 30:
            if len(pos) < sum(map(len, series.values())):  # a zero (e.g. no weight decay): linear near 0
                ax.set_xscale("symlog", linthresh=min(pos))
            else:
                ax.set_xscale("log")
        ax.set(xlabel=x_key, ylabel=label(m), title=f"median over members of {label(m)}")
    axes[0][0].legend()
    fig.suptitle(f"{name}: against {x_key}")
    return save(fig, path)


@styled
def curves_figure(rows: list[dict], root: Path, name: str, key: str, path: Path) -> Path | None:
    """A logged curve over training (each job's figures/curves.json), one colour per variant."""
    jobs = {(r.get("job"), _variant(r)) for r in rows if r.get("name") == name}
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    drawn = set()
    for job, variant in sorted(jobs, key=str):
        f = root / str(job) / "figures" / "curves.json"
        if not f.exists():
            continue
        data = json.loads(f.read_text())
        if key not in data:
            continue
        for vals in zip(*data[key]):  # one line per member
            ax.plot(data["step"][: len(vals)], vals, color=style("method", variant)["color"], lw=1, alpha=0.7,
                    label=_variant_text(variant) if variant not in drawn else None)
            drawn.add(variant)
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="training step (full-batch update)", ylabel=label(key), title=f"{name}: one line per member")
    ax.legend()
    return save(fig, path)


@styled
def ridge_figure(rows: list[dict], path: Path) -> Path | None:
    """Fig. 3 left across jobs: test MSE against d (n_train fixed) per variant and weight decay."""
    rs = [r for r in rows if r.get("name") == "syre_ridge"]
    dims = sorted({int(k.rsplit("/d", 1)[1]) for r in rs for k in r if k.startswith("test/mse/d")})
    if not dims:
        return None
    series: dict[str, list[dict]] = defaultdict(list)
    for r in rs:
        wd = r.get("weight_decay")
        series[f"{_variant_text(_variant(r))}, weight decay {'?' if wd is None else f'{_f(wd):g}'}"].append(r)
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for text, group in sorted(series.items()):
        no_decay = _f(text.rsplit("weight decay ", 1)[1]) == 0
        look = style("method", _variant(group[0]))
        ax.plot(dims, [_median([r.get(f"test/mse/d{d}") for r in group]) for d in dims],
                marker=look["marker"], ms=4, label=text, color=look["color"], ls=":" if no_decay else "-", alpha=0.8)
    ax.set_yscale("log")
    ax.set(xlabel="input dimension d (n_train fixed; the peak sits at d = n_train)", ylabel=label("test/mse"),
           title="Ridge regression: syre against plain training")
    ax.legend()
    return save(fig, path)


def syre_figures(rows: list[dict], root: Path) -> dict[str, Path]:
    ok = [r for r in rows if r.get("status") == "ok" and str(r.get("name", "")).startswith("syre_")]
    if not ok:
        return {}
    fig_dir = root / "figures"
    out = {}
    p = symbench_figure(ok, fig_dir / "syre_fig4_symbench.png")
    if p is not None:
        out["syre_fig4"] = p
    p = ridge_figure(ok, fig_dir / "syre_ridge.png")
    if p is not None:
        out["syre_ridge"] = p
    for name in LINE_METRICS:
        p = line_figure(ok, name, fig_dir / f"{name}.png")
        if p is not None:
            out[name] = p
    p = curves_figure(ok, root, "syre_reparam", "sym/dead_coordinates", fig_dir / "syre_reparam_dead.png")
    if p is not None:
        out["syre_reparam_dead"] = p
    return out
