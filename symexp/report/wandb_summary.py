"""Log a sweep's summary (table, summary.md and figures) to W&B as one run in the sweep's group.

The run's id is derived from the sweep folder, so rerunning the report updates the same run; project,
entity and mode follow the sweep's own ``logger`` settings with the same precedence as a job's run
(config value > WANDB_* environment > default), and the same bounded online-to-offline fallback.
The run's config is the sweep's: the keys it swept (with their values) and the config its jobs share,
so the summary run can be found and filtered like the jobs. Its ``summary/members`` table keeps numbers
as numbers (sortable and plottable in the UI) and summary.md is logged rendered (HTML)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from symexp.loggers import init_run, summary_run_id, wandb_identity


def sweep_logger_config(root: Path) -> dict:
    """The ``logger`` node the sweep's jobs ran with (from the first results.json that records one)."""
    for path in sorted(Path(root).rglob("results.json")):
        try:
            logger = (json.loads(path.read_text()).get("config") or {}).get("logger")
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(logger, dict):
            return logger
    return {}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numeric_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Columns and cells of the members table: a column whose values are all numbers (or missing) holds
    floats (non-finite ones as None, which W&B shows empty), any other column holds text."""
    lead = [k for k in ("job", "name", "status", "seed") if any(k in r for r in rows)]
    keys = lead + sorted({k for r in rows for k in r} - set(lead))
    numeric = {k for k in keys if all(r.get(k) is None or _number(r.get(k)) for r in rows)
               and any(r.get(k) is not None for r in rows)}
    data = []
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            if k in numeric:
                cells.append(float(v) if v is not None and math.isfinite(v) else None)
            else:
                cells.append(None if v is None else str(v))
        data.append(cells)
    return keys, data


def markdown_html(text: str) -> str:
    """summary.md as HTML (headings, tables, lists), so the W&B UI shows it rendered, not as source."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(text)
    style = ("<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
             "text-align:right}</style>")
    return style + body


def sweep_config(root: Path) -> dict:
    """The summary run's config: the sweep's folder, its swept keys with their values, the shared config."""
    from symexp.report.sweep import read_sweep

    sweep = read_sweep(root)
    return {**sweep.shared_config(), "sweep": {"dir": str(sweep.root), "name": sweep.name, "family": sweep.family,
                                              "jobs": len(sweep.jobs), "swept": sweep.swept}}


def log_summary(root: Path, rows: list[dict], summary_md: Path, figures: dict[str, Path],
                logger_cfg: dict | None = None) -> str:
    """Log (or update) the sweep's summary run; returns its id."""
    import wandb

    root = Path(root)
    ident = wandb_identity(sweep_logger_config(root) if logger_cfg is None else logger_cfg)
    group = f"{root.parent.name}/{root.name}"
    run = init_run(
        ident["mode"], ident["init_timeout"], project=ident["project"], entity=ident["entity"], group=group,
        name=f"{group}/summary", job_type="report", dir=str(root), id=summary_run_id(root), resume="allow",
        tags=["report", f"experiment:{root.parent.name}"], reinit="finish_previous",
    )
    try:
        run.config.update(sweep_config(root), allow_val_change=True)  # a rerun (more jobs done) updates it
        columns, data = numeric_table(rows)
        table = wandb.Table(columns=columns, data=data, allow_mixed_types=True)
        payload = {"summary/members": table, "summary/markdown": wandb.Html(markdown_html(summary_md.read_text()))}
        payload.update({f"summary/{k}": wandb.Image(str(p)) for k, p in figures.items()})
        run.log(payload)
        run.summary["status"] = "ok"
        run.summary["jobs"] = len({r.get("job") for r in rows})
        return run.id
    finally:
        run.finish()
