"""Build a sweep's W&B workspace and report with wandb-workspaces (W&B's own library for views as code).

The workspace shows the sweep's training runs (its W&B group, job_type train) grouped by the swept keys:
final metrics as bars per swept value (mean over runs, min-max as the range), each ensemble member's value
beside them, training curves against the runs' step axis with the paper's numbers as reference lines, and
the family's scatter views. The report reproduces the sweep's summary table (summary.md's tables) above
the same panels and the summary run's numeric members table."""

from __future__ import annotations

import re

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from symexp.dashboard.layouts import LAYOUTS, Layout
from symexp.dashboard.references import PREFIX, paper_values
from symexp.report.sweep import Sweep

# config groups: a swept group (experiment=..., syre=...) is read from the run config's Hydra choices
GROUPS = {"model", "data", "task", "metric", "syre", "device", "logger", "launcher", "budget", "experiment",
          "hparams_search", "audit", "debug", "callbacks"}
MAX_MEMBER_PANELS = 32  # per-member keys are logged for ensembles up to this size (symexp.loggers)


def config_path(key: str) -> str:
    """Where a swept key lives in a run's W&B config (symexp.loggers logs Hydra's choices under hydra.choices)."""
    return f"hydra.choices.{key}" if key in GROUPS else key


def _groupby(sweep: Sweep) -> list[str]:
    return [config_path(k) for k in sweep.swept] or ["name"]


def _references(sweep: Sweep) -> dict[str, float]:
    """Every paper value one of the sweep's runs logs (their union: a panel draws those its runs have)."""
    out: dict[str, float] = {}
    for job in sweep.jobs:
        out.update(paper_values(job.results.get("config")))
    return out


def _members(sweep: Sweep) -> int:
    sizes = [len(j.results.get("members") or []) for j in sweep.jobs]
    return max(sizes, default=0)


def _curves(layout: Layout) -> list[wr.LinePlot]:
    plots = []
    for pattern in layout.curves:
        kwargs = {"x": layout.axis} if layout.axis else {}
        if any(c in pattern for c in "*?["):
            regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
            plots.append(wr.LinePlot(title=pattern, metric_regex=regex, log_y=layout.log_scale or None, **kwargs))
        else:
            plots.append(wr.LinePlot(title=pattern, y=[pattern], log_y=layout.log_scale or None, **kwargs))
    return plots


def panels(sweep: Sweep, layout: Layout) -> dict[str, list]:
    """The panels of each section, named by the sweep's metrics and grouped by its first swept key."""
    metrics = sweep.metrics()
    finals = layout.pick(metrics)
    refs = _references(sweep)
    group = wr.Config(_groupby(sweep)[0]) if sweep.swept else None
    bars = []
    for m in finals:
        ys = [m] + ([PREFIX + m] if PREFIX + m in refs else [])
        bars.append(wr.BarPlot(title=m + (" (paper value beside)" if len(ys) > 1 else ""), metrics=ys,
                               groupby=group, groupby_aggfunc="mean", groupby_rangefunc="minmax",
                               title_x=_groupby(sweep)[0]))
    curves = _curves(layout)
    axis = {"x": layout.axis} if layout.axis else {}
    for plot in curves:
        if plot.y and PREFIX + "test/mse" in refs and plot.y[0] in ("val/mse", "test/mse"):
            plot.y = [*plot.y, PREFIX + "test/mse"]  # logged at a run's first and last step: a horizontal line
        plot.groupby, plot.groupby_aggfunc, plot.groupby_rangefunc = group, "mean", "minmax"
    k = _members(sweep)
    per_member = []
    if 1 < k <= MAX_MEMBER_PANELS:
        per_member += [wr.BarPlot(title=f"{m}: each of the {k} members", metrics=[f"member/{i}/{m}" for i in range(k)])
                       for m in finals[:6]]
        per_member += [wr.LinePlot(title=f"{c}: each member", metric_regex=rf"^member/\d+/{re.escape(c)}$",
                                   log_y=layout.log_scale or None, **axis) for c in layout.member_curves]
    scatter = [wr.ScatterPlot(title=f"{y} vs {x}", x=wr.SummaryMetric(x), y=wr.SummaryMetric(y),
                              log_x=layout.log_scale or None, log_y=layout.log_scale or None)
               for x, y in layout.scatter if x in metrics and y in metrics]
    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(p)) for p in _groupby(sweep) if sweep.swept]
    columns += [wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(m), log=layout.log_scale or None)
                for m in finals[:6]]
    overview = scatter + ([wr.ParallelCoordinatesPlot(title="swept keys -> final metrics", columns=columns)]
                          if len(columns) > 1 else [])
    return {"final metrics by " + ", ".join(sweep.swept or {"run": 0}): bars,
            "per-member spread": per_member,
            "training curves": curves,
            "overview": overview}


def _run_filter(sweep: Sweep, job_type: str) -> expr.And:
    return expr.And(expr.Metric("Group") == sweep.group, expr.Metric("JobType") == job_type)


def workspace(sweep: Sweep, entity: str, project: str) -> ws.Workspace:
    layout = LAYOUTS[sweep.family]
    sections = [ws.Section(name=name, panels=ps, is_open=i < 3)
                for i, (name, ps) in enumerate(panels(sweep, layout).items()) if ps]
    finals = layout.pick(sweep.metrics())
    return ws.Workspace(
        entity=entity, project=project, name=f"{sweep.group}: {layout.title}"[:128], sections=sections,
        settings=ws.WorkspaceSettings(x_axis=layout.axis or "Step", max_runs=100),
        runset_settings=ws.RunsetSettings(
            filters=_run_filter(sweep, "train"),
            groupby=[expr.Config(p) for p in _groupby(sweep)] if sweep.swept else [],
            pinned_columns=[f"config:{p}.value" for p in _groupby(sweep) if sweep.swept]
            + [f"summary:{m}" for m in finals[:8]],
        ),
    )


def _runset(sweep: Sweep, entity: str, project: str, job_type: str, online: bool) -> wr.Runset:
    """A runset of the sweep's runs of one job_type. Offline (no account to look the project up) the spec
    leaves entity/project to the report's own."""
    where = {"entity": entity, "project": project} if online else {}
    groupby = [f"config.{p}" for p in _groupby(sweep)] if sweep.swept and job_type == "train" else []
    return wr.Runset(name=f"{sweep.group} ({job_type})", filters=_run_filter(sweep, job_type), groupby=groupby,
                     **where)


def report(sweep: Sweep, summary_md: str, entity: str, project: str, online: bool = False) -> wr.Report:
    layout = LAYOUTS[sweep.family]
    sections = panels(sweep, layout)
    swept = "; ".join(f"{k} = {', '.join(v)}" for k, v in sweep.swept.items()) or "nothing (one setting)"
    blocks = [
        wr.P(f"Sweep folder {sweep.root}: {len(sweep.jobs)} jobs, swept: {swept}. "
             f"Runs: W&B group {sweep.group}."),
        wr.H2("Summary table"),
        wr.MarkdownBlock(summary_md),
        wr.H2("Final metrics by swept value"),
        wr.PanelGrid(runsets=[_runset(sweep, entity, project, "train", online)],
                     panels=[p for name, ps in sections.items() if name != "training curves" for p in ps]),
        wr.H2("Training curves"),
        wr.PanelGrid(runsets=[_runset(sweep, entity, project, "train", online)], panels=sections["training curves"]),
        wr.H2("Every member (the sweep's summary run)"),
        wr.PanelGrid(runsets=[_runset(sweep, entity, project, "report", online)],
                     panels=[wr.WeavePanelSummaryTable(table_name="summary/members", layout=wr.Layout(w=24, h=12))]),
    ]
    return wr.Report(project=project, entity=entity, title=f"{sweep.name}: {layout.title}"[:128],
                     description=f"symexp sweep {sweep.group}", blocks=blocks, width="fluid")


def workspace_json(w: ws.Workspace) -> dict:
    return w._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


def report_json(r: wr.Report) -> dict:
    return r._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)
