"""Seed 000's figures drawn from summary rows: Figure 3 (test MSE against active partial defect, one panel
per target; colour = regime, marker = model and rank, size = mirror mismatch), Figure 4 (low-loss runs by
family and sampling), Figure 5 (positive-bias scatter), and Figure 2 (partials of RF-LR beside the MLP
control). Titles say what is drawn; the paper's figure numbers are in the file names."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from symexp.figstyle import MARKERS, label, plt, save, style, styled
from symexp.plots import draw_1d
from symexp.stats import median_of

MSE, DEFECT, MIRROR = "test/mse", "sym/partial_defect", "sym/mirror_mismatch"
MLP_MARKER = "X"
SIZE_MIN, SIZE_SPAN = 12.0, 140.0


def _f(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _ok_sym(rows):
    return [r for r in rows if r.get("status") == "ok" and r.get("model") in ("rflr", "mlp")
            and _f(r.get(MSE)) > 0 and _f(r.get(DEFECT)) > 0]


def _log_axes(ax) -> None:
    """At most ~5 labelled decades per axis; minor ticks labelled only where the data span under two
    decades (else their labels overlap), so every axis has at least two labelled ticks."""
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        axis.set_major_locator(LogLocator(numticks=5))
        decades = math.log10(hi / lo) if lo > 0 else 99
        if decades >= 2:
            axis.set_minor_formatter(NullFormatter())
        else:  # few decades: label a few minor ticks, spaced so their labels never touch
            axis.set_minor_locator(LogLocator(subs=(3.0,) if decades >= 1 else (2.0, 3.0, 5.0), numticks=12))
            axis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False))


def _model_marker(r: dict, ranks: list) -> tuple[str, str]:
    """(marker, legend text): one marker per RF-LR rank, X for the MLP control."""
    if r.get("model") == "mlp":
        return MLP_MARKER, "MLP control"
    return MARKERS[ranks.index(r.get("rank")) % len(MARKERS)], f"RF-LR rank {r.get('rank')}"


def _size(mm: float, top: float) -> float:
    return SIZE_MIN + SIZE_SPAN * (mm / top if top > 0 and math.isfinite(mm) else 0.0)


@styled
def figure3(rows: list[dict], path: Path) -> Path | None:
    """The function/weight-space map; every finished RF-LR and MLP run, one panel per target."""
    runs = _ok_sym(rows)
    if not runs:
        return None
    targets = sorted({str(r.get("data")) for r in runs})
    ranks = sorted({r.get("rank") for r in runs if r.get("model") == "rflr"}, key=lambda x: (x is None, x))
    mm = np.array([_f(r.get(MIRROR)) for r in runs])
    top = float(np.nanmax(mm)) if np.isfinite(mm).any() else 0.0
    cols = min(len(targets), 3)
    nrows = math.ceil(len(targets) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols + 1.6, 3.0 * nrows), squeeze=False)
    regimes, markers = {}, {}
    for ax, target in zip(axes.flat, targets):
        for r in (r for r in runs if str(r.get("data")) == target):
            marker, text = _model_marker(r, ranks)
            colour = style("regime", r.get("regime"))["color"]
            ax.scatter(_f(r[MSE]), _f(r[DEFECT]), s=_size(_f(r.get(MIRROR)), top), c=colour, marker=marker,
                       alpha=0.75, edgecolors="k", linewidths=0.3)
            regimes[str(r.get("regime"))] = colour
            markers[text] = marker
        ax.set(xscale="log", yscale="log", title=f"target: {target}", xlabel=label(MSE), ylabel=label(DEFECT))
        _log_axes(ax)
    for ax in axes.flat[len(targets):]:
        ax.axis("off")
    handles = [Line2D([], [], ls="", marker="o", color=c, label=g) for g, c in regimes.items()]
    handles += [Line2D([], [], ls="", marker=m, mfc="w", mec="k", color="k", label=t) for t, m in markers.items()]
    if top > 0:  # the size scale: three reference values of the mirror mismatch
        for v in (top / 4, top / 2, top):
            handles.append(Line2D([], [], ls="", marker="o", mfc="0.7", mec="k", color="k",
                                  markersize=math.sqrt(_size(v, top)), label=f"mirror mismatch {v:.2g}"))
    fig.legend(handles=handles, loc="outside right center", title="regime, model, size")
    fig.suptitle("Function space (test MSE) against weight space (active partial defect)")
    return save(fig, path)


def _family(r: dict) -> str:
    if r.get("model") == "mlp":
        return "MLP"
    return "RF-LR low rank" if (r.get("rank") or 0) <= 16 else "RF-LR high rank"


@styled
def figure4(rows: list[dict], path: Path) -> Path | None:
    """Active partial defect of the low-loss runs (not underfit by the regime's grid R^2, as in summary.md)
    per model family and sampling; bars are medians."""
    low = [r for r in _ok_sym(rows) if r.get("regime") not in ("underfit", "diverged")]
    if not low:
        return None
    fams = [f for f in ("RF-LR low rank", "RF-LR high rank", "MLP") if any(_family(r) == f for r in low)]
    samplings = sorted({str(r.get("sampling")) for r in low})
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.8 / max(len(samplings), 1)
    jitter = np.random.default_rng(0)
    for j, smp in enumerate(samplings):
        look = {"color": f"C{j}", "marker": MARKERS[j % len(MARKERS)]}
        for i, fam in enumerate(fams):
            vals = [_f(r[DEFECT]) for r in low if _family(r) == fam and str(r.get("sampling")) == smp]
            if not vals:
                continue
            x = i + (j - (len(samplings) - 1) / 2) * width
            ax.scatter(np.full(len(vals), x) + jitter.uniform(-0.05, 0.05, len(vals)), vals, s=14, alpha=0.7, **look)
            ax.hlines(median_of(vals), x - width / 2.5, x + width / 2.5, color="k")
        ax.scatter([], [], s=14, label=f"sampling: {smp}", **look)
    ax.plot([], [], color="k", label="median")
    ticks = []
    for fam in fams:
        if fam == "MLP":
            ticks.append("MLP control")
        else:
            fam_ranks = sorted({r.get("rank") for r in low if _family(r) == fam}, key=lambda x: (x is None, x))
            ticks.append(f"{fam}\n(rank {', '.join(map(str, fam_ranks))})")
    ax.set(yscale="log", xticks=range(len(fams)), xticklabels=ticks, xlabel="model family", ylabel=label(DEFECT),
           title="Low-loss runs (not underfit: grid $R^2$ at least the regime's cut)")
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(-0.6, len(fams) - 0.4)
    ax.grid(False, axis="x")
    ax.legend(loc="best")
    return save(fig, path)


@styled
def figure5(rows: list[dict], path: Path) -> Path | None:
    """Positive-bias stress test: colour = target, marker = model and rank."""
    pb = [r for r in _ok_sym(rows) if r.get("sampling") == "positive_bias"]
    if not pb:
        return None
    ranks = sorted({r.get("rank") for r in pb if r.get("model") == "rflr"}, key=lambda x: (x is None, x))
    fig, ax = plt.subplots(figsize=(5.8, 4.0))
    targets, markers = {}, {}
    for r in pb:
        marker, text = _model_marker(r, ranks)
        colour = style("target", r.get("data"))["color"]
        ax.scatter(_f(r[MSE]), _f(r[DEFECT]), marker=marker, c=colour, s=40, alpha=0.8, edgecolors="k", linewidths=0.3)
        targets[str(r.get("data"))], markers[text] = colour, marker
    handles = [Line2D([], [], ls="", marker="o", color=c, label=f"target: {t}") for t, c in targets.items()]
    handles += [Line2D([], [], ls="", marker=m, mfc="w", mec="k", color="k", label=t) for t, m in markers.items()]
    ax.set(xscale="log", yscale="log", xlabel=label(MSE), ylabel=label(DEFECT),
           title="Positive-bias sampling: training data only at x > 0")
    _log_axes(ax)
    ax.legend(handles=handles, loc="best")
    return save(fig, path)


def _early_middle_deep(names: list[str], most: int = 4) -> list[str]:
    """At most `most` blocks, evenly spaced from the first to the last (the poster's early / middle /
    deep layers; the paper's Figure 2 nets have 16)."""
    if len(names) <= most:
        return names
    return [names[round(i * (len(names) - 1) / (most - 1))] for i in range(most)]


@styled
def figure2(rows: list[dict], root: Path, path: Path) -> Path | None:
    """Partials of one RF-LR run beside one MLP run on the same 1D target (from their partials.npz)."""
    runs = {}
    for r in rows:
        if r.get("status") != "ok" or r.get("model") not in ("rflr", "mlp") or "1d" not in str(r.get("data", "")):
            continue
        npz = root / str(r.get("job")) / "figures" / "partials.npz"
        if npz.exists():
            runs.setdefault((r.get("data"), r["model"]), npz)
    pairs = [(d, runs[(d, "rflr")], runs[(d, "mlp")]) for (d, m) in runs if m == "rflr" and (d, "mlp") in runs]
    if not pairs:
        return None
    data, rf_path, mlp_path = pairs[0]
    loaded = [np.load(rf_path), np.load(mlp_path)]
    blocks = [_early_middle_deep(sorted((k for k in z.files if k.startswith("arr_")), key=lambda k: int(k[4:])))
              for z in loaded]
    cols = max(len(b) for b in blocks)
    fig, axes = plt.subplots(2, cols, figsize=(3.0 * cols, 5.6), squeeze=False)
    for row, (z, names, model) in enumerate(zip(loaded, blocks, ("RF-LR", "MLP control"))):
        member = int(z["member"]) if "member" in z.files else 0
        seed = int(z["seed"]) if "seed" in z.files and int(z["seed"]) >= 0 else None
        who = f"member {member}" + (f", seed {seed}" if seed is not None else "")
        panels = [(f"{model} ({who}): block {int(n[4:]) + 1}", f"partial $p_{{{int(n[4:]) + 1},k}}(x)$", z[n])
                  for n in names]
        draw_1d(axes[row], z["grid"][:, 0], panels)
        for ax in axes[row, len(names):]:
            ax.axis("off")
    fig.suptitle(f"Partial functions on {data}: top units by variance; dashed: mirror image p(-x)")
    return save(fig, path)



def write_figures(rows: list[dict], root: Path) -> dict[str, Path]:
    out = {}
    fig_dir = root / "figures"
    for name, fn in (("figure3", figure3), ("figure4", figure4), ("figure5", figure5)):
        p = fn(rows, fig_dir / f"{name}.png")
        if p is not None:
            out[name] = p
    p = figure2(rows, root, fig_dir / "figure2_partials.png")
    if p is not None:
        out["figure2"] = p
    return out
