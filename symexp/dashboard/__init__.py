"""Dashboards as code: a sweep's W&B workspace and report, written as JSON specs into the sweep folder
(offline, no account) and created in W&B when online. ``python -m symexp.dashboard SWEEP_DIR``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("symexp")


class DashboardError(RuntimeError):
    """A sweep folder the dashboard cannot be built from (no jobs, no results): one line, no traceback."""


@dataclass
class Written:
    workspace: Path
    report: Path
    family: str
    urls: tuple[str, ...] = ()


def build(root: Path, entity: str, project: str, online: bool = False):
    """(sweep, workspace, report) objects for the sweep folder ``root``."""
    from symexp.dashboard.spec import report, workspace
    from symexp.report.aggregate import collect
    from symexp.report.sweep import read_sweep
    from symexp.report.tables import summary_markdown

    sweep = read_sweep(root)
    if not sweep.jobs:
        raise DashboardError(f"{root}: no job folders (with .hydra/) below it; is it a sweep folder?")
    if not sweep.metrics():
        raise DashboardError(f"{root}: no job wrote numeric metrics (no ok results.json yet)")
    md = summary_markdown(collect(sweep.root)).removeprefix("# symexp summary\n").lstrip()  # the report has a title
    return sweep, workspace(sweep, entity, project), report(sweep, md, entity, project, online)


def write(root: Path, entity: str | None = None, project: str | None = None, online: bool = False) -> Written:
    """Write ``root/dashboard/workspace.json`` and ``report.json``; ``online``: also save both in W&B."""
    from symexp.dashboard.spec import report_json, workspace_json
    from symexp.loggers import wandb_identity
    from symexp.report.sweep import read_sweep

    root = Path(root)
    if not root.is_dir():
        raise DashboardError(f"{root} is not a folder")
    ident = wandb_identity(read_sweep(root).logger_config())
    project = project or ident["project"]
    entity = entity or ident["entity"] or ""
    sweep, ws_obj, rep = build(root, entity, project)
    out = root / "dashboard"
    out.mkdir(exist_ok=True)
    paths = out / "workspace.json", out / "report.json"
    for path, spec in zip(paths, (workspace_json(ws_obj), report_json(rep))):
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(spec, indent=1, sort_keys=True))
        tmp.replace(path)
    urls: tuple[str, ...] = ()
    if online:  # built again: the entity may come from the account, and the report's runsets name the project
        _, ws_obj, rep = build(root, entity or _default_entity(), project, online=True)
        ws_obj.save()
        rep.save()
        urls = (ws_obj.url, rep.url)
    return Written(paths[0], paths[1], sweep.family, urls)


def _default_entity() -> str:
    import wandb

    entity = wandb.Api().default_entity
    if not entity:
        raise DashboardError("no W&B entity: pass --entity, set logger.entity or WANDB_ENTITY, or `wandb login`")
    return entity
