"""Writers: audit/report.json (schema-versioned), audit/report.md (the verdict on top, one table row
per layer), figures (rank and dead-unit profiles per layer, singular-value spectra), and one W&B run
with job_type=audit."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from symexp.audit.core import Audit
from symexp.figstyle import plt, save, styled
from symexp.results import environment, write_json_atomic
from symexp.schema import PROJECT_ROOT


def _f(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def layer_table(report: dict) -> list[str]:
    """Markdown rows: one per layer, the columns the verdict reads."""
    data = "inputs" in report
    head = ["layer", "type", "units", "act", "weight rank num/eff/approx (max)", "zero in", "dup groups (copies)",
            "balance dist", "rot. deficit"]
    if data:
        head += ["dead", "repr eff rank", "cov rank abs / rel"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["layers"]:
        w, u, p = row["weight"], row["units_info"], row["permutation"]
        cells = [
            f"`{row['name']}`", row["type"], str(row["units"]), row["activation"] or "-",
            f"{w['numerical_rank']:.0f}/{w['effective_rank']:.1f}/{w['approximate_rank']:.0f} ({w['max_rank']:.0f})",
            str(u["zero_incoming"]), f"{p['groups']} ({p['collapsed_units']})",
            _f(row.get("rescaling", {}).get("balance_distance")), _f(row.get("rotation", {}).get("rank_deficit")),
        ]
        if data:
            d = row.get("data")
            rep = (d.get("post") or d["pre"]) if d else None
            cells += [str(d["dead_units"]) if d and row["activation"] else "-",
                      _f(rep["effective_rank"]) if rep else "-", f"{rep['covariance_rank']:.0f} / {rep['covariance_rank_rel']:.0f}" if rep else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report: dict) -> str:
    t, net = report["target"], report["network"]
    out = [f"# Audit: {t.get('name', '')}", "", report["verdict"], ""]
    o = report["options"]
    out += [f"Thresholds: dead units >= {o['dead_fraction']:.0%}, zero-incoming units >= {o['zero_unit_fraction']:.0%}, "
            f"effective rank < {o['rank_fraction']} of width, balance distance > {o['imbalance']}, "
            f"zero weights > {o['sparsity']:.0%}, duplicate tolerance {o['duplicate_tol']} (relative), "
            f"zero tolerance {o['zero_tol']} (relative to the layer's RMS). Change them with --set KEY=VALUE.", ""]
    out += ["## Target", "", *(f"- {k}: `{v}`" for k, v in t.items() if v is not None)]
    if "inputs" in report:
        out.append(f"- inputs: {report['inputs']['samples']} x {report['inputs']['shape']} ({report['inputs'].get('source', '')})")
    out += ["", "## Whole network", "", *(f"- {k}: {_f(v)}" for k, v in net.items()), ""]
    out += ["## Layers", "", *layer_table(report), ""]
    out += ["Columns: ranks of the weight matrix (units x fan-in); *zero in*: units whose incoming weights (or "
            "norm scale and shift) are zero; *dup groups*: groups of units with identical incoming, bias, norm and "
            "outgoing weights (the permutation mirror), *copies* = units a group repeats; *balance dist*: share of "
            "the squared norm that balancing |in| = |out| per unit would remove (ReLU-like layers with a successor); "
            "*rot. deficit*: rank deficit of [W_in | W_out^T] where a linear path makes rotating the units a symmetry (the rotation mirror's constraint); *dead*: units "
            "exactly 0 after the activation on every input; *repr eff rank*: effective rank of the post-activation "
            "(pre-activation where there is none); *cov rank abs / rel*: covariance eigenvalues above cov_tol "
            "(seed 002's absolute rule, scale-dependent) and above cov_tol x the largest (scale-free; the verdict's).", ""]
    if report.get("attention"):
        out += ["## Attention", "", "| module | heads | W_q^T W_k eff rank | W_o W_v eff rank | max |", "|---|---|---|---|---|"]
        for a in report["attention"]:
            out.append(f"| `{a['name']}` | {a['heads']} | {a['qk']['effective_rank']:.1f} | {a['vo']['effective_rank']:.1f} | {a['max_rank']:.0f} |")
        out.append("")
    sym = report.get("input_symmetry")
    if sym:
        out += [f"## Input symmetry ({sym['transform']})", "", f"- output defect D_out: {_f(sym['output_defect'])}"]
        for name, v in sym["layers"].items():
            out.append(f"- `{name}`: active partial defect {_f(v['partial_defect'])} (max {_f(v['partial_defect_max'])}, "
                       f"{v['active_partials']} active)")
        if "first_layer_mirror_pairs" in sym:
            mp = sym["first_layer_mirror_pairs"]
            out.append(f"- first-layer mirror pairs: mismatch {_f(mp['mirror_mismatch'])}, correlation "
                       f"{_f(mp['mirror_corr'])}, distance {_f(mp['mirror_distance'])}")
        out.append("")
    if report["notes"]:
        out += ["## Notes", "", *(f"- {n}" for n in report["notes"]), ""]
    if report.get("figures"):
        out += ["## Figures", "", *(f"![{k}]({v})" for k, v in report["figures"].items()), ""]
    return "\n".join(out)


def _per_layer_figure(fig, ax, x, names: list[str], ylabel: str, title: str, path: Path) -> Path:
    """The shared frame of the per-layer profiles: layer names on x, a fraction in [0, 1] on y."""
    ax.set_xticks(x, names, rotation=70, fontsize=7)
    ax.set_xlabel("layer (input to output)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return save(fig, path)


@styled
def figures(audit: Audit, fig_dir: Path) -> dict[str, Path]:
    """rank_profile.png, dead_units.png, spectra.png."""
    rows = audit.report["layers"]
    if not rows:
        return {}
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    figs = {}
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 3.6))
    ax.plot(x, [r["weight"]["effective_rank"] / r["weight"]["max_rank"] for r in rows], "o-", label="weights: effective")
    ax.plot(x, [r["weight"]["numerical_rank"] / r["weight"]["max_rank"] for r in rows], "s--", label="weights: numerical")
    if "inputs" in audit.report:
        rep = [(r["data"].get("post") or r["data"]["pre"]) if "data" in r else None for r in rows]
        ax.plot(x, [p["effective_rank"] / r["units"] if p else np.nan for p, r in zip(rep, rows)], "^-", label="representation: effective")
        ax.plot(x, [p["covariance_rank"] / r["units"] if p else np.nan for p, r in zip(rep, rows)], "v--", label="representation: covariance")
    figs["rank_profile"] = _per_layer_figure(fig, ax, x, names, "rank / full rank (fraction)", "Rank profile per layer",
                                             fig_dir / "rank_profile.png")

    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 3.4))
    width = 0.4
    ax.bar(x - width / 2, [r["units_info"]["zero_incoming"] / r["units"] for r in rows], width, label="zero incoming weights")
    if "inputs" in audit.report:
        ax.bar(x + width / 2, [r["data"]["dead_units"] / r["units"] if "data" in r and r["activation"] else 0 for r in rows],
               width, label="dead on the data")
    ax.bar(x, [r["permutation"]["collapsed_units"] / r["units"] for r in rows], 0.15, color="k", label="copies (duplicates)")
    figs["dead_units"] = _per_layer_figure(fig, ax, x, names, "fraction of units", "Dead and collapsed units per layer",
                                           fig_dir / "dead_units.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    cmap = plt.get_cmap("viridis")
    for i, (name, sv) in enumerate(audit.weight_spectra.items()):
        if sv.numel() and float(sv.max()) > 0:
            s = (sv / sv.max()).double().numpy()
            keep = s > 1e-12  # numerically zero singular values are absent from a log plot, not drawn at a floor
            ax.plot((np.arange(1, len(s) + 1) / len(s))[keep], s[keep], color=cmap(i / max(len(rows) - 1, 1)), lw=1,
                    label=name if len(rows) <= 12 else None)
    ax.set_yscale("log")
    ax.set_xlabel("index / number of singular values")
    ax.set_ylabel("singular value / largest")
    ax.set_title("Weight singular-value spectra (dark: first layer)")
    if len(rows) <= 12:
        ax.legend(fontsize=6)
    figs["spectra"] = save(fig, fig_dir / "spectra.png")
    return figs


def write(audit: Audit, out_dir: Path, draw: bool = True) -> dict[str, Path]:
    """report.json, report.md and the figures into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = audit.report
    figs = figures(audit, out_dir / "figures") if draw else {}
    report["figures"] = {k: str(v.relative_to(out_dir)) for k, v in figs.items()}
    report["env"] = environment(PROJECT_ROOT, "cpu")
    report["spectra"] = {k: [round(float(s), 6) for s in v[:512]] for k, v in audit.weight_spectra.items()}
    write_json_atomic(out_dir / "report.json", report)
    (out_dir / "report.md").write_text(markdown(report) + "\n")
    return {"json": out_dir / "report.json", "md": out_dir / "report.md", **figs}


def scalars(report: dict) -> dict[str, float]:
    """Flat numeric summary for W&B: network counts and per-layer key numbers."""
    out = {f"audit/network/{k}": float(v) for k, v in report["network"].items() if isinstance(v, (int, float))}
    for row in report["layers"]:
        p = f"audit/{row['name']}"
        out[f"{p}/weight_effective_rank"] = row["weight"]["effective_rank"]
        out[f"{p}/duplicate_groups"] = float(row["permutation"]["groups"])
        out[f"{p}/zero_incoming"] = float(row["units_info"]["zero_incoming"])
        if "data" in row:
            out[f"{p}/dead_units"] = float(row["data"]["dead_units"])
            out[f"{p}/repr_effective_rank"] = (row["data"].get("post") or row["data"]["pre"])["effective_rank"]
    return out


def log_wandb(report: dict, paths: dict[str, Path], out_dir: Path, project: str | None = None, group: str | None = None,
              name: str | None = None, mode: str | None = None) -> None:
    """One W&B run (job_type=audit): the scalars, the layer table and the figures. ``mode`` follows the
    logger's precedence (a set mode > WANDB_MODE > offline). The audit of a job folder is named, grouped
    and tagged like the job's training run (``<its name> [audit]``)."""
    import wandb

    from symexp.loggers import follow_training_run, init_run, wandb_identity

    os.environ.setdefault("WANDB_SILENT", "true")
    ident = wandb_identity({"mode": mode, "project": project})
    kwargs = follow_training_run(
        dict(project=ident["project"], entity=ident["entity"], job_type="audit", group=group,
             name=name or f"audit/{report['target'].get('name')}", tags=["audit"], dir=str(out_dir),
             config={"target": report["target"], "options": report["options"]}, reinit="finish_previous"),
        report["target"].get("job_dir"), "audit")
    run = init_run(ident["mode"], ident["init_timeout"], **kwargs)
    try:
        run.log(scalars(report))
        cols = ["layer", "type", "units", "weight_eff_rank", "dup_groups", "zero_incoming", "dead"]
        table = wandb.Table(columns=cols)
        for row in report["layers"]:
            table.add_data(row["name"], row["type"], row["units"], row["weight"]["effective_rank"],
                           row["permutation"]["groups"], row["units_info"]["zero_incoming"],
                           row.get("data", {}).get("dead_units"))
        run.log({"audit/layers": table, **{f"audit/figures/{k}": wandb.Image(str(v)) for k, v in paths.items()
                                           if str(v).endswith(".png")}})
        run.summary["audit/verdict"] = report["verdict"]
    finally:
        run.finish()

