"""What a job prints: the end-of-run results table (sized to the terminal), where the job's files are and
how to upload its offline W&B run, and one console line per log message (no third-party tips, no
known-harmless warnings)."""

from __future__ import annotations

import fnmatch
import logging
import math
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

# Tasks that do not declare headline metrics: test metrics, the symmetry defects and the regime (seed 000).
DEFAULT_HEADLINE = ("test/*", "sym/output*", "sym/partial_defect*", "sym/mirror*", "regime")
_DEFAULT_EXCLUDE = ("*/block*", "sym/output_defect/*")
# cluster logs have no terminal: wide enough for a few metric columns, narrow enough to read
LOG_WIDTH = 120
# Lightning's rank-zero messages that advertise its cloud services; they say nothing about the run
_ADVERTS = ("💡 Tip:",)


def headline_keys(summary: dict, patterns: Sequence[str] | None = None) -> list[str]:
    """The summary keys matching the task's headline patterns (fnmatch), in the summary's order."""
    if patterns is None:
        patterns, exclude = DEFAULT_HEADLINE, _DEFAULT_EXCLUDE
    else:
        exclude = ()
    return [k for k in summary if any(fnmatch.fnmatchcase(k, p) for p in patterns)
            and not any(fnmatch.fnmatchcase(k, e) for e in exclude)]


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or not math.isfinite(value):
        return "nan"
    return f"{value:.3g}"


def terminal_width() -> int:
    """COLUMNS when set, else the terminal's width, else LOG_WIDTH (stdout is a file: a cluster log)."""
    return shutil.get_terminal_size((LOG_WIDTH, 24)).columns


def _wide_table(name: str, members: list[dict], summary: dict, keys: list[str]):
    """Members as rows, metrics as columns (the compact form, when every full name fits)."""
    from rich.table import Table

    table = Table(title=f"symexp results: {name}")
    table.add_column("seed", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for key in keys:
        table.add_column(key, justify="right", no_wrap=True)
    for m in members:
        table.add_row(str(m["seed"]), m["status"], *[_fmt(m["metrics"].get(k)) for k in keys])
    if len(members) > 1:
        table.add_row("median", "", *[_fmt(summary.get(k)) for k in keys])
    return table


def _tall_table(name: str, members: list[dict], summary: dict, keys: list[str], per_member: bool):
    """Metrics as rows: every metric keeps its full name however many there are. ``per_member``: a column
    per member beside the median, else the median with the members' min and max."""
    from rich.table import Table

    table = Table(title=f"symexp results: {name}")
    table.add_column("metric", overflow="fold")
    numeric = {k: [m["metrics"].get(k) for m in members if isinstance(m["metrics"].get(k), (int, float))]
               for k in keys}
    if per_member:
        for m in members:
            table.add_column(f"seed {m['seed']}" + ("" if m["status"] == "ok" else f" ({m['status']})"),
                             justify="right", no_wrap=True)
    if len(members) > 1 or not per_member:
        table.add_column("median", justify="right", no_wrap=True)
    if not per_member:
        table.add_column("min", justify="right", no_wrap=True)
        table.add_column("max", justify="right", no_wrap=True)
    for k in keys:
        cells = [_fmt(m["metrics"].get(k)) for m in members] if per_member else []
        if len(members) > 1 or not per_member:
            cells.append(_fmt(summary.get(k)))
        if not per_member:
            vals = numeric[k]
            cells += [_fmt(min(vals)), _fmt(max(vals))] if vals else ["", ""]
        table.add_row(k, *cells)
    if not per_member:
        ok = sum(m["status"] == "ok" for m in members)
        table.caption = f"{len(members)} members ({ok} ok); median over the ok ones"
    return table


def results_table(name: str, members: list[dict], summary: dict, headline: Sequence[str] | None, width: int):
    """The widest form that fits ``width`` columns: members x metrics, metrics x members, metrics x median/min/max."""
    from rich.console import Console

    unbounded = Console(width=100_000)  # a measurement is capped at the console's width: measure without one
    keys = headline_keys(summary, headline)
    for table in (_wide_table(name, members, summary, keys), _tall_table(name, members, summary, keys, True)):
        if unbounded.measure(table).maximum <= width:
            return table
    return _tall_table(name, members, summary, keys, per_member=False)


def print_table(name: str, members: list[dict], summary: dict, headline: Sequence[str] | None = None,
                width: int | None = None) -> None:
    """The results table printed at the end of every run, never wider than the terminal."""
    from rich.console import Console

    width = width or terminal_width()
    Console(width=width, soft_wrap=False).print(results_table(name, members, summary, headline, width))


def _shown(path: Path) -> str:
    """A path relative to the current folder when it lies below it (shorter, and what a user types)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def offline_wandb_dirs(job_dir: Path) -> list[Path]:
    """The job's offline W&B run folders (a resumed job has one per attempt, all with the same run id)."""
    return sorted((Path(job_dir) / "wandb").glob("offline-run-*"))


def print_where(job_dir: Path) -> None:
    """The last lines of a run: its folder, and the command that uploads its offline W&B run."""
    print(f"job folder: {_shown(job_dir)}")
    if offline_wandb_dirs(job_dir):  # the glob: a resumed job has several folders of the same run
        print(f"upload its offline W&B run:\n  wandb sync {_shown(Path(job_dir) / 'wandb')}/offline-run-*", flush=True)


class _DropMessages(logging.Filter):
    """Drops Lightning's advertisements (records that start with one of ``_ADVERTS``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVERTS)


_DROP = _DropMessages()


def quiet_console() -> None:
    """One console line per message, nothing that is not about the run. Idempotent; called at job start.

    - ``import lightning`` gives the ``lightning`` logger its own ``INFO:`` console handler and lets records
      propagate too; under Hydra's job logging the root logger already prints them (and writes the job's
      log file), so every Lightning line came out twice. That handler goes when the root has a console.
    - Lightning's tips advertise its cloud products.
    - Lightning 2.6's pytree helper calls torch's deprecated ``isinstance(x, LeafSpec)`` (torch >= 2.10):
      a FutureWarning about Lightning's internals, not about anything the user can change, once per run.
    """
    root_console = any(type(h) is logging.StreamHandler for h in logging.getLogger().handlers)
    if root_console:
        top = logging.getLogger("lightning")
        for handler in list(top.handlers):
            if type(handler) is logging.StreamHandler:
                top.removeHandler(handler)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _DROP not in rank_zero.filters:
        rank_zero.addFilter(_DROP)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)

