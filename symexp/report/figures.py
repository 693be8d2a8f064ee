"""The paper's figures drawn from summary rows: seed 000's Figure 3 (test MSE vs active partial defect;
colour = regime, marker = rank, size = mirror mismatch), Figure 4 (low-loss runs by family and
sampling), Figure 5 (positive-bias scatter), and Figure 2 (partials of RF-LR beside the MLP control)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from symexp.plots import save_figure  # noqa: E402
from symexp.stats import median_of  # noqa: E402

REGIME_COLOURS = {
    "partial-symmetric": "tab:green", "output-only": "tab:red", "intermediate": "tab:orange",
    "underfit": "tab:gray", "diverged": "black",
}
MARKERS = ["o", "s", "D", "^", "v", "P", "X"]


def _f(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _ok_sym(rows):
    return [r for r in rows if r.get("status") == "ok" and r.get("model") in ("rflr", "mlp")
            and _f(r.get("test/mse")) > 0 and _f(r.get("sym/partial_defect")) > 0]


def figure3(rows: list[dict], path: Path) -> Path | None:
    rf = [r for r in _ok_sym(rows) if r.get("model") == "rflr"]
    if not rf:
        return None
    ranks = sorted({r.get("rank") for r in rf}, key=lambda x: (x is None, x))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    mm = np.array([_f(r.get("sym/mirror_mismatch")) for r in rf])
    size = 15 + 200 * np.nan_to_num(mm / (np.nanmax(mm) or 1), nan=0.1)
    for r, s in zip(rf, size):
        ax.scatter(_f(r["test/mse"]), _f(r["sym/partial_defect"]), s=s, alpha=0.7, edgecolors="k", linewidths=0.3,
                   c=REGIME_COLOURS.get(r.get("regime"), "tab:blue"), marker=MARKERS[ranks.index(r.get("rank")) % 7])
    for g, c in REGIME_COLOURS.items():
        ax.scatter([], [], c=c, label=g)
    for i, k in enumerate(ranks):
        ax.scatter([], [], c="w", edgecolors="k", marker=MARKERS[i % 7], label=f"rank {k}")
    ax.set(xscale="log", yscale="log", xlabel="test MSE", ylabel="active partial defect (last block)",
           title="Figure 3: function/weight-space map (size = mirror mismatch)")
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


def _family(r: dict) -> str:
    if r.get("model") == "mlp":
        return "MLP"
    return "RF-LR low rank" if (r.get("rank") or 0) <= 16 else "RF-LR high rank"


def figure4(rows: list[dict], path: Path) -> Path | None:
    """Low-loss = not underfit by the regime (R^2 on the grid), as in summary.md."""
    low = [r for r in _ok_sym(rows) if r.get("regime") not in ("underfit", "diverged")]
    if not low:
        return None
    fams = ["RF-LR low rank", "RF-LR high rank", "MLP"]
    samplings = sorted({str(r.get("sampling")) for r in low})
    fig, ax = plt.subplots(figsize=(6.5, 4))
    width = 0.8 / max(len(samplings), 1)
    for j, smp in enumerate(samplings):
        for i, fam in enumerate(fams):
            vals = [_f(r["sym/partial_defect"]) for r in low if _family(r) == fam and str(r.get("sampling")) == smp]
            if not vals:
                continue
            x = i + (j - (len(samplings) - 1) / 2) * width
            ax.scatter(np.full(len(vals), x) + np.random.default_rng(0).uniform(-0.05, 0.05, len(vals)), vals,
                       s=14, alpha=0.7, color=f"C{j}", label=smp if i == 0 or fam == fams[0] else None)
            ax.hlines(median_of(vals), x - width / 2.5, x + width / 2.5, color="k")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8)
    ax.set(yscale="log", xticks=range(3), xticklabels=fams, ylabel="active partial defect",
           title="Figure 4: low-loss runs (not underfit by R^2); bars = medians")
    return save_figure(fig, path)


def figure5(rows: list[dict], path: Path) -> Path | None:
    pb = [r for r in _ok_sym(rows) if r.get("sampling") == "positive_bias"]
    if not pb:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    marker = {("rflr", 8): "o", ("rflr", 128): "s"}
    for r in pb:
        m = "^" if r["model"] == "mlp" else marker.get(("rflr", r.get("rank")), "D")
        colour = "tab:blue" if "gauss" in str(r.get("data")) else "tab:orange"
        ax.scatter(_f(r["test/mse"]), _f(r["sym/partial_defect"]), marker=m, c=colour, s=40, alpha=0.8,
                   edgecolors="k", linewidths=0.3)
    for lab, m in (("RF-LR rank 8", "o"), ("RF-LR rank 128", "s"), ("MLP", "^")):
        ax.scatter([], [], marker=m, c="w", edgecolors="k", label=lab)
    ax.scatter([], [], c="tab:blue", label="Gaussian")
    ax.scatter([], [], c="tab:orange", label="quadratic")
    ax.set(xscale="log", yscale="log", xlabel="test MSE", ylabel="active partial defect",
           title="Figure 5: positive-bias stress test")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _early_middle_deep(names: list[str], most: int = 4) -> list[str]:
    """At most `most` blocks, evenly spaced from the first to the last (the poster's early / middle /
    deep layers; the paper's Figure 2 nets have 16)."""
    if len(names) <= most:
        return names
    return [names[round(i * (len(names) - 1) / (most - 1))] for i in range(most)]


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
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 5.5), squeeze=False)
    for row, (z, names, label) in enumerate(zip(loaded, blocks, ("RF-LR", "MLP control"))):
        x = z["grid"][:, 0]
        for col, name in enumerate(names):
            ax = axes[row, col]
            for k in range(z[name].shape[1]):
                line = ax.plot(x, z[name][:, k], lw=1)[0]
                ax.plot(-x, z[name][:, k], lw=0.8, ls="--", color=line.get_color(), alpha=0.6)
            ax.set_title(f"{label}: block {int(name[4:]) + 1}", fontsize=9)
    fig.suptitle(f"Figure 2: partial functions on {data} (dashed: p(-x))")
    return save_figure(fig, path)



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
