"""The one pipeline every experiment goes through (see ARCHITECTURE.md):
validate -> seed -> build data, model, syre, task, metrics -> fit -> best parameters -> metrics ->
results.json + figures -> W&B -> finish. Tests call run(cfg) in-process through Hydra's compose API."""

from __future__ import annotations

import datetime
import logging
import math
import time
import traceback
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from symexp.loggers import build_logger, finish, progress_callbacks
from symexp.results import SCHEMA, environment, write_json_atomic
from symexp.schema import ConfigError, validate
from symexp.seeding import member_seeds
from symexp.symmetry.callback import SymmetryMetrics, median

log = logging.getLogger("symexp")
TRAINER_KEYS = {"accelerator", "devices", "precision", "strategy", "num_nodes"}


def _job_context(cfg: DictConfig) -> tuple[Path, str, str | None, bool]:
    """Output folder, W&B run name, W&B group (the sweep) and whether this is a multirun job."""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        out = Path(hc.runtime.output_dir)
        if hc.mode == RunMode.MULTIRUN:
            sweep = Path(hc.sweep.dir)
            return out, f"{cfg.name}/{hc.job.num}", f"{sweep.parent.name}/{sweep.name}", True
        return out, f"{cfg.name}/{out.name}", None, False
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    return Path(cfg.paths.output_root) / "runs" / cfg.name / stamp, f"{cfg.name}/{stamp}", None, False


def _root_error(exc: BaseException) -> BaseException:
    """Hydra wraps errors raised while instantiating; report the original, which names the key."""
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _device_name(trainer: L.Trainer) -> str:
    root = trainer.strategy.root_device
    if root.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(root)}"
    return str(root)


def build(cfg: DictConfig) -> dict:
    """Instantiate data, model, syre, task and metrics for cfg; every _target_ receives the member seeds."""
    seeds = member_seeds(cfg.seed, cfg.ensemble.size)
    dm = instantiate(cfg.data, seeds=seeds)
    model = instantiate(cfg.model, seeds=seeds)
    syre = instantiate(cfg.syre, seeds=seeds) if cfg.syre and "_target_" in cfg.syre else None
    task = instantiate(cfg.task, model=model, datamodule=dm, seeds=seeds, syre=syre)
    metrics = {k: instantiate(v) for k, v in (cfg.metric or {}).items() if v is not None}
    return {"seeds": seeds, "datamodule": dm, "model": model, "syre": syre, "task": task, "metrics": metrics}


def _trainer(cfg: DictConfig, task, out_dir: Path, logger, sym_cb: SymmetryMetrics) -> L.Trainer:
    progress, bar = progress_callbacks(cfg.progress)
    callbacks = [sym_cb, *progress]
    if cfg.save_checkpoints:
        callbacks.append(ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0))
    kwargs = dict(task.trainer_defaults())
    kwargs.update({k: v for k, v in OmegaConf.to_container(cfg.device).items() if k in TRAINER_KEYS})
    kwargs.update({k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if v is not None})
    return L.Trainer(
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=bar,
        enable_model_summary=False,
        default_root_dir=str(out_dir),
        deterministic=cfg.deterministic,
        **kwargs,
    )


def _members(seeds, status, computed) -> list[dict]:
    rows = []
    for k, seed in enumerate(seeds):
        metrics = {}
        for key, value in computed.items():
            metrics[key] = value[k] if isinstance(value, list) else float(torch.as_tensor(value).flatten()[k])
        rows.append({"seed": seed, "status": status[k], "metrics": metrics})
    return rows


def _summary(members: list[dict]) -> dict:
    ok = [m for m in members if m["status"] == "ok"] or members
    keys = list(ok[0]["metrics"]) if ok else []
    out = {}
    for key in keys:
        values = [m["metrics"][key] for m in ok]
        out[key] = median(values) if isinstance(values[0], str) else median(torch.tensor(values))
    return out


def print_table(name: str, members: list[dict], summary: dict) -> None:
    """The results table printed at the end of every run."""
    from rich.console import Console
    from rich.table import Table

    keys = [k for k in summary if k.startswith(("test/", "sym/output", "sym/partial_defect", "sym/mirror")) or k == "regime"]
    keys = [k for k in keys if "/block" not in k and not k.startswith("sym/output_defect/")]
    table = Table(title=f"symexp results: {name}")
    table.add_column("seed")
    table.add_column("status")
    for key in keys:
        table.add_column(key, justify="right")
    fmt = lambda v: v if isinstance(v, str) else ("nan" if v is None or not math.isfinite(v) else f"{v:.3g}")  # noqa: E731
    for m in members:
        table.add_row(str(m["seed"]), m["status"], *[fmt(m["metrics"].get(k)) for k in keys])
    if len(members) > 1:
        table.add_row("median", "", *[fmt(summary.get(k)) for k in keys])
    Console(width=200).print(table)


def run(cfg: DictConfig) -> float | None:
    """Run one job; always writes results.json and finishes its logger run, even when the job fails."""
    t0 = time.time()
    out_dir, run_name, group, multirun = _job_context(cfg)
    for sub in ("figures", "checkpoints"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    payload = {
        "schema": SCHEMA, "status": "failed", "error": None, "name": cfg.name, "seed": cfg.seed,
        "config": None, "metrics": {}, "members": [], "timing": {}, "env": {},
    }
    logger = None
    try:
        payload["config"] = OmegaConf.to_container(cfg, resolve=True)
        validate(cfg)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        parts = build(cfg)
        task, seeds = parts["task"], parts["seeds"]
        logger = build_logger(cfg, out_dir, run_name, group)
        sym_cb = SymmetryMetrics(parts["metrics"])
        trainer = _trainer(cfg, task, out_dir, logger, sym_cb)
        if logger is not None:
            n_params = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
            logger.log_hyperparams({"params/trainable": n_params, "seeds": seeds})
        ckpt = out_dir / "checkpoints" / "last.ckpt"
        t_fit = time.time()
        trainer.fit(task, datamodule=parts["datamodule"], ckpt_path=str(ckpt) if cfg.resume and ckpt.exists() else None)
        fit_s = time.time() - t_fit
        task.restore_best()
        computed = sym_cb.compute(task)
        status = task.member_status()
        members = _members(seeds, status, computed)
        summary = _summary(members)
        figures = task.figures(out_dir / "figures")
        steps = int(getattr(task, "data_step", trainer.global_step))
        payload.update(
            status="diverged" if all(s == "diverged" for s in status) else "ok",
            metrics=summary,
            members=members,
            figures={k: str(Path(v).relative_to(out_dir)) for k, v in figures.items()},
            timing={
                "wall_s": time.time() - t0, "fit_s": fit_s, "train_steps": steps,
                "model_steps_per_s": steps * len(seeds) / max(fit_s, 1e-9),
            },
            env=environment(Path(cfg.paths.root), _device_name(trainer)),
        )
        if logger is not None:
            logger.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
            if hasattr(logger, "log_image"):
                for key, path in figures.items():
                    logger.log_image(key=f"figures/{key}", images=[str(path)])
            if hasattr(logger, "experiment") and hasattr(logger.experiment, "summary"):
                logger.experiment.summary.update({k: v for k, v in summary.items()})
                logger.experiment.summary["status"] = payload["status"]
        write_json_atomic(out_dir / "results.json", payload)
        print_table(cfg.name, members, summary)
        finish(logger, failed=False)
        if cfg.get("audit"):  # +audit=on: symexp.audit's report of the trained model in <job>/audit/
            from symexp.audit.callback import audit_run

            audit_run(cfg, task, out_dir)
        return task.objective(summary)
    except Exception as exc:  # record, finish the logger run, then fail (or let the sweep go on)
        root = _root_error(exc)
        payload["error"] = f"{type(root).__name__}: {root}"
        payload["timing"] = {"wall_s": time.time() - t0}
        write_json_atomic(out_dir / "results.json", payload)
        log.error("job %s failed: %s\n%s", run_name, payload["error"], traceback.format_exc())
        finish(logger, failed=True)
        if multirun:
            return None
        if isinstance(root, (ConfigError, ValueError)):
            raise SystemExit(f"symexp: configuration error: {root}") from None
        raise
