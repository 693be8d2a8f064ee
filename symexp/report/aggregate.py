"""Collect every results.json below a folder into one row per ensemble member."""

from __future__ import annotations

import csv
import json
from pathlib import Path

ROW_KEYS = ("job", "name", "status", "error", "seed", "model", "data", "rank", "width", "depth", "sampling",
            "partials")


def _config_fields(cfg: dict | None) -> dict:
    cfg = cfg or {}
    model, data = cfg.get("model") or {}, cfg.get("data") or {}
    target = str(model.get("_target_", ""))
    return {
        "model": "rflr" if target.endswith("RFLR") else target.rsplit(".", 1)[-1].lower() or None,
        "data": data.get("label") or str(data.get("_target_", "")).rsplit(".", 1)[-1] or None,
        "rank": model.get("rank"),
        "width": model.get("width"),
        "depth": model.get("depth"),
        "sampling": data.get("sampling"),
        # which MLP features are its partials; runs from before the knob existed read post-activation
        "partials": (model.get("partials") or "post") if target.endswith(".MLP") else None,
        "syre_variant": _syre_variant(cfg.get("syre")) if "syre" in cfg else None,
        "weight_decay": _weight_decay(cfg),
        "dropout": model.get("dropout"),
    }


def _weight_decay(cfg: dict) -> float | None:
    """The decay strength the run trained with: syre.weight_decay when a static-bias syre sets it (it
    overwrites the optimizer's), else task.optimizer.weight_decay; None when the config has neither."""
    syre = cfg.get("syre") or {}
    if str(syre.get("_target_", "")).endswith("StaticBias") and syre.get("weight_decay") is not None:
        return float(syre["weight_decay"])
    wd = ((cfg.get("task") or {}).get("optimizer") or {}).get("weight_decay")
    return None if wd is None else float(wd)


def _syre_variant(syre: dict | None) -> str:
    """The syre option a config used (off / static_bias / offset / advanced / perturb_only / anchor_only /
    wfix / sigma_asym)."""
    syre = syre or {}
    target = str(syre.get("_target_", "")).rsplit(".", 1)[-1]
    if not target:
        return "off"
    if target == "StaticBias":
        if syre.get("form") == "offset":
            return "offset"
        if float(syre.get("sigma_D") or 0) > 0:
            return "advanced"
        if syre.get("anchor") is False:
            return "perturb_only"
        return "anchor_only" if syre.get("shift_init") is False else "static_bias"
    return {"WFix": "wfix", "SigmaAsym": "sigma_asym", "Off": "off"}.get(target, target)


def _overrides(job: Path) -> str | None:
    """The job's Hydra command-line overrides ("a=1 b=2"), which tell sweep jobs apart in the report."""
    path = job / ".hydra" / "overrides.yaml"
    if not path.exists():
        return None
    items = [line.strip()[2:].strip() for line in path.read_text().splitlines() if line.strip().startswith("- ")]
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        out.append(key + eq + value.strip("'\""))  # syre="off" (YAML-quoted) -> syre=off
    return " ".join(out) or None


def collect(root: Path) -> list[dict]:
    """One row per member of every job below root; failed jobs give one row with their error."""
    rows = []
    for hydra_dir in sorted(root.rglob(".hydra")):
        job = hydra_dir.parent
        if job != root and not (job / "results.json").exists():
            rows.append({"job": str(job.relative_to(root)), "status": "failed",
                         "error": "no results.json: the job was killed or is still running"})
    for path in sorted(root.rglob("results.json")):
        try:
            res = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            job = str(path.parent.relative_to(root))
            rows.append({"job": job, "status": "failed", "error": f"unreadable results.json: {exc}"})
            continue
        base = {
            "job": str(path.parent.relative_to(root)) or ".",
            "overrides": _overrides(path.parent),
            "name": res.get("name"),
            "status": res.get("status"),
            "error": res.get("error"),
            **_config_fields(res.get("config")),
        }
        members = res.get("members") or []
        if not members:
            rows.append({**base, "seed": res.get("seed")})
        for m in members:
            status = m.get("status", base["status"])
            rows.append({**base, "status": status, "seed": m.get("seed"), **(m.get("metrics") or {})})
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    keys = list(ROW_KEYS) + sorted({k for r in rows for k in r} - set(ROW_KEYS))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow(r)
    return path


def write_report(root: Path, log_wandb: bool = False) -> list[Path]:
    """summary.csv, summary.md and the paper figures in root; optionally one W&B summary run."""
    from symexp.report.figures import write_figures
    from symexp.report.tables import summary_markdown

    rows = collect(root)
    paths = [write_csv(rows, root / "summary.csv")]
    figures = write_figures(rows, root)
    from symexp.report.syre_figures import syre_figures

    figures.update(syre_figures(rows, root))
    md = root / "summary.md"
    md.write_text(summary_markdown(rows, figures={k: p.relative_to(root) for k, p in figures.items()}))
    paths += [md, *figures.values()]
    if log_wandb:
        from symexp.report.wandb_summary import log_summary

        log_summary(root, rows, md, figures)
    return paths
