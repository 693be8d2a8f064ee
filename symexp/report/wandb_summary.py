"""Log a sweep's summary (table and figures) to W&B as one run in the sweep's group.

The run's id is derived from the sweep folder, so rerunning the report updates the same run; project,
entity and mode follow the sweep's own ``logger`` settings with the same precedence as a job's run
(config value > WANDB_* environment > default), and the same bounded online-to-offline fallback."""

from __future__ import annotations

import json
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
        keys = sorted({k for r in rows for k in r})
        table = wandb.Table(columns=keys, data=[[str(r.get(k, "")) for k in keys] for r in rows])
        payload = {"summary/members": table, "summary/markdown": wandb.Html(f"<pre>{summary_md.read_text()}</pre>")}
        payload.update({f"summary/{k}": wandb.Image(str(p)) for k, p in figures.items()})
        run.log(payload)
        run.summary["status"] = "ok"
        run.summary["jobs"] = len({r.get("job") for r in rows})
        return run.id
    finally:
        run.finish()
