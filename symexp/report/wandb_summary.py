"""Log a sweep's summary (table and figures) to W&B as one run in the sweep's group."""

from __future__ import annotations

import os
from pathlib import Path


def log_summary(root: Path, rows: list[dict], summary_md: Path, figures: dict[str, Path]) -> None:
    import wandb

    group = f"{root.parent.name}/{root.name}"
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "symexp"), group=group, name=f"{group}/summary",
        job_type="report", dir=str(root), mode=os.environ.get("WANDB_MODE", "offline"), reinit="finish_previous",
    )
    try:
        keys = sorted({k for r in rows for k in r})
        table = wandb.Table(columns=keys, data=[[str(r.get(k, "")) for k in keys] for r in rows])
        payload = {"summary/members": table, "summary/markdown": wandb.Html(f"<pre>{summary_md.read_text()}</pre>")}
        payload.update({f"summary/{k}": wandb.Image(str(p)) for k, p in figures.items()})
        run.log(payload)
    finally:
        run.finish()
