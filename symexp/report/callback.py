"""Hydra callback: every multirun ends with its report in the sweep folder, then its exit code."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("symexp")


class SweepReport(Callback):
    def __init__(self, log_wandb: bool = True) -> None:
        self.log_wandb = log_wandb

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from symexp.report.aggregate import bad_jobs, write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        backend = config.get("logger", {}).get("backend", "none")
        try:
            paths = write_report(sweep_dir, log_wandb=self.log_wandb and backend == "wandb")
            log.info("sweep report: %s", ", ".join(str(p) for p in paths))
            if backend == "wandb":
                log.info("W&B workspace and report for this sweep: python -m symexp.dashboard %s [--online]", sweep_dir)
        except Exception as exc:  # the sweep's results are on disk; a report failure must not hide them
            log.error("sweep report failed (%s); rerun `python -m symexp.report %s`", exc, sweep_dir)
        bad = bad_jobs(sweep_dir)
        from symexp.signals import sweep_exit_code

        stopped = sweep_exit_code(sweep_dir, bad)
        if stopped is not None:  # whatever strict_exit says: an interrupted sweep is not a finished one
            raise SystemExit(stopped)
        if bad:
            listing = ", ".join(f"{job} ({status})" for job, status in sorted(bad.items()))
            log.error("%d job(s) of the sweep did not finish ok: %s", len(bad), listing)
            if config.get("strict_exit", True):
                # SystemExit, not an exception: Hydra turns callback exceptions into warnings and exits 0
                raise SystemExit(f"symexp: {len(bad)} job(s) failed or diverged in {sweep_dir} (strict_exit=false exits 0)")
