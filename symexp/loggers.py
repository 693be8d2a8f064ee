"""Where metrics go: one W&B run per Hydra job (offline unless the user opts in), or CSV, or nothing;
and how progress shows: a Rich bar in a terminal, plain periodic lines in cluster logs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf


def build_logger(cfg: DictConfig, out_dir: Path, run_name: str, group: str | None, job_type: str = "train",
                 ) -> Logger | None:
    backend = cfg.logger.get("backend", "none")
    if backend == "none":
        return None
    if backend == "csv":
        return CSVLogger(save_dir=str(out_dir), name="csv", version="")
    mode = os.environ.get("WANDB_MODE") or cfg.logger.get("mode", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    (out_dir / "wandb").mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=cfg.logger.get("project", "symexp"),
        entity=cfg.logger.get("entity"),
        name=run_name,
        group=cfg.logger.get("group") or group,
        tags=list(cfg.get("tags") or []) + list(cfg.logger.get("tags") or []),
        save_dir=str(out_dir),
        mode=mode,
        config=OmegaConf.to_container(cfg, resolve=True),
        reinit="finish_previous",
        job_type=job_type,
    )


def finish(logger: Logger | None, failed: bool) -> None:
    """Close the job's W&B run, marking it failed when the job failed, so the next job gets its own."""
    if isinstance(logger, WandbLogger):
        import wandb

        if wandb.run is not None:
            wandb.run.finish(exit_code=1 if failed else 0)


class PlainProgress(L.Callback):
    """One line every ``interval_s`` seconds with the epoch and the latest logged metrics."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s, self._last = interval_s, 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.monotonic()
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if now - self._last < self.interval_s and not last_epoch:
            return
        self._last = now
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        text = "  ".join(f"{k}={v:.3g}" for k, v in sorted(shown.items()))
        print(f"[symexp] epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {text}", flush=True)


def progress_callbacks(style: str) -> tuple[list[L.Callback], bool]:
    """Callbacks for the progress style and whether Lightning's own bar stays enabled."""
    if style == "auto":
        style = "rich" if sys.stdout.isatty() else "plain"
    if style == "rich":
        return [RichProgressBar(leave=True)], True
    if style == "plain":
        return [PlainProgress()], False
    return [], False
