"""Collect every results.json below a folder into one row per ensemble member."""

from __future__ import annotations

import csv
import functools
import json
import os
from collections import Counter
from pathlib import Path

from hydra.errors import InstantiationException

FAILED = "results.failed.json"

ROW_KEYS = ("job", "name", "status", "error", "seed", "model", "data", "rank", "width", "depth", "sampling",
            "partials")


def _r2_min(cfg: dict):
    from symexp.symmetry.regime import thresholds_of  # here: the launcher imports this module without torch

    return thresholds_of(cfg)["r2_min"]


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
        "epochs": (cfg.get("task") or {}).get("epochs"),
        "n_train": data.get("n_train"),
        "r2_min": _r2_min(cfg) if "regime" in (cfg.get("metric") or {}) else None,
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


def _target_variance(cfg: dict | None):
    """Var(target on the grid) from a stored data config, computed once per config and only when asked
    (runs stored before data/target_var was recorded)."""
    from symexp.data.regression import grid_target_variance

    data = (cfg or {}).get("data") or {}

    @functools.cache
    def variance() -> float | None:
        try:
            return grid_target_variance(data)
        except (KeyError, TypeError, ValueError, InstantiationException):  # not a symmetric-regression config
            return None

    return variance


def _results_files(root: Path) -> list[Path]:
    """Every job's results.json below root (an `eval/` re-evaluation beside a job is not a job)."""
    return [p for p in sorted(root.rglob("results.json")) if p.parent.name != "eval"]


def _missing_jobs(root: Path) -> list[Path]:
    """Job folders (they hold .hydra/) without results.json: killed, still running, never started."""
    return [h.parent for h in sorted(root.rglob(".hydra")) if h.parent != root and not (h.parent / "results.json").exists()]


def _refused_rerun(failed: Path) -> bool:
    """A failure record that older symexp versions wrote for a rerun they refused (another config's
    folder): the folder's status is its last accepted run, so it does not count."""
    try:
        return str(json.loads(failed.read_text()).get("error", "")).startswith("ConfigError: resume:")
    except (OSError, ValueError, AttributeError):
        return False


def job_status(job_dir: Path) -> tuple[str, str | None]:
    """(status, error) of a job folder's latest attempt: results.json, unless a later attempt failed and
    wrote results.failed.json beside a good one; a missing or unreadable file counts as failed."""
    results, failed = job_dir / "results.json", job_dir / "results.failed.json"
    newer = failed.exists() and (not results.exists() or failed.stat().st_mtime >= results.stat().st_mtime)
    path = failed if newer and not _refused_rerun(failed) else results
    try:
        res = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return "failed", f"no readable {path.name} ({type(exc).__name__})"
    return str(res.get("status")), res.get("error")


def bad_jobs(root: Path) -> dict[str, str]:
    """{job folder: status} for every job below root whose latest attempt did not end ok (failed, diverged,
    missing), and every job the sweep's latest invocation refused (refused)."""
    from symexp.sweepcheck import refusals

    out = {str(job.relative_to(root)): "missing" for job in _missing_jobs(root)}
    out.update({job: "refused" for job in refusals(root)})
    for path in _results_files(root):
        status, _ = job_status(path.parent)
        if status != "ok":
            out.setdefault(str(path.parent.relative_to(root)) or ".", status)
    return out


def collect(root: Path, relative_to: Path | None = None) -> list[dict]:
    """One row per member of every job below root; failed jobs give one row with their error. Job paths are
    relative to `relative_to` (default root), where a report written elsewhere finds the jobs' files."""
    base_dir = relative_to or root
    rel = lambda p: os.path.relpath(p, base_dir) if relative_to else (str(p.relative_to(root)) or ".")  # noqa: E731
    from symexp.sweepcheck import refusals

    rows = []
    for job in _missing_jobs(root):
        rows.append({"job": rel(job), "status": "failed", "error": "no results.json: the job was killed or is still running"})
    for job, error in refusals(root).items():  # the folder holds another config's run, left as it was
        rows.append({"job": rel(root / job), "status": "refused", "error": error})
    for path in _results_files(root):
        try:
            res = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            rows.append({"job": rel(path.parent), "status": "failed", "error": f"unreadable results.json: {exc}"})
            continue
        base = {
            "job": rel(path.parent),
            "overrides": _overrides(path.parent),
            "name": res.get("name"),
            "status": res.get("status"),
            "error": res.get("error"),
            "train_steps": (res.get("timing") or {}).get("train_steps"),
            **_config_fields(res.get("config")),
        }
        latest, latest_error = job_status(path.parent)
        if latest == "failed" and base["status"] != "failed":  # a later attempt failed beside these results
            rows.append({**base, "status": "failed", "error": f"latest attempt ({FAILED}): {latest_error}"})
        members = res.get("members") or []
        if not members:
            rows.append({**base, "seed": res.get("seed")})
        variance = _target_variance(res.get("config"))
        for m in members:
            status = m.get("status", base["status"])
            from symexp.report.seed000 import recompute_regime  # here: `import symexp.report` stays torch-free

            metrics = recompute_regime(m.get("metrics") or {}, res.get("config"), status, variance)
            rows.append({**base, "status": status, "seed": m.get("seed"), **metrics})
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    lead = ["source", *ROW_KEYS] if any("source" in r for r in rows) else list(ROW_KEYS)
    keys = lead + sorted({k for r in rows for k in r} - set(lead))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow(r)
    return path


def collect_many(roots: list[Path], out: Path) -> list[dict]:
    """The rows of several sweep folders (e.g. one study split over two SLURM submissions) as one table;
    each row's `source` names the folder it came from and its `job` path is relative to out."""
    rows = []
    for root in roots:
        rows += [{**r, "source": str(root)} for r in collect(root.resolve(), relative_to=out.resolve())]
    return rows


def sources_markdown(rows: list[dict]) -> str:
    """Which folder each job of a merged report came from, with its jobs' statuses."""
    lines = ["## Sources", "", "| source | jobs | member rows | status |", "|---|---|---|---|"]
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source]
        status = Counter(r.get("status") for r in mine)
        counts = ", ".join(f"{n} {s}" for s, n in status.most_common())
        lines.append(f"| {source} | {len({r.get('job') for r in mine})} | {len(mine)} | {counts} |")
    return "\n".join(lines) + "\n"


def write_report(root: Path, log_wandb: bool = False, sources: list[Path] | None = None) -> list[Path]:
    """summary.csv, summary.md and the paper figures in root (from the jobs below root, or below each of
    `sources` merged into one report); optionally one W&B summary run."""
    from symexp.report.figures import write_figures
    from symexp.report.tables import summary_markdown

    root.mkdir(parents=True, exist_ok=True)
    rows = collect_many(sources, root) if sources else collect(root)
    paths = [write_csv(rows, root / "summary.csv")]
    figures = write_figures(rows, root)
    from symexp.report.syre_figures import syre_figures

    figures.update(syre_figures(rows, root))
    md = root / "summary.md"
    text = summary_markdown(rows, figures={k: p.relative_to(root) for k, p in figures.items()})
    if sources:
        text = text.replace("\n", "\n\n" + sources_markdown(rows) + "\n", 1)
    md.write_text(text)
    paths += [md, *figures.values()]
    if log_wandb:
        from symexp.report.wandb_summary import log_summary

        log_summary(root, rows, md, figures)
    return paths
