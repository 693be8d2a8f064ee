"""The one pipeline every experiment goes through:
validate -> decide (fresh, resume or skip) -> seed -> build data, model, syre, task, metrics -> fit (with
mid-run checkpoints) -> best parameters -> metrics -> results.json + figures -> W&B -> finish.
Tests call run(cfg) in-process through Hydra's compose API; symexp.evaluate calls it on a checkpoint."""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
import traceback
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from symexp import fingerprint as fp
from symexp import folder as jobfolder
from symexp import signals
from symexp.console import print_table, print_where
from symexp.divergence import Diverged
from symexp.joblog import job_log, log_traceback
from symexp.preflight import trainer_error
from symexp.results import SCHEMA, environment, write_json_atomic
from symexp.resume import Refused, decide
from symexp.schema import ConfigError, validate
from symexp.seeding import member_seeds
from symexp.validation import resolve_config

log = logging.getLogger("symexp")
TRAINER_KEYS = {"accelerator", "devices", "precision", "strategy", "num_nodes"}
RESULTS, FAILED_RESULTS, RESOLVED = jobfolder.RESULTS, jobfolder.FAILED_RESULTS, "config.resolved.yaml"


class UserError(RuntimeError):
    """A failure the user can fix from the command line (config, data, environment): one line, no traceback."""


def _job_context(cfg: DictConfig) -> tuple[Path, str, str | None, bool]:
    """Output folder, W&B run name, W&B group (the sweep) and whether this is a multirun job."""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        out = Path(hc.runtime.output_dir)
        if hc.mode == RunMode.MULTIRUN:
            sweep = Path(hc.sweep.dir)
            return out, f"{cfg.name}/{hc.job.num}", f"{sweep.parent.name}/{sweep.name}", True
        return out, f"{cfg.name}/{out.name}", None, False
    root = cfg.paths.output_root
    if not str(root or "").strip():  # Path("") is the working directory: record nothing there
        bad = ConfigError("paths.output_root", f"got {root!r}; allowed a non-empty string")
        raise SystemExit(f"symexp: configuration error: {bad}")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    return Path(cfg.paths.output_root) / "runs" / cfg.name / stamp, f"{cfg.name}/{stamp}", None, False


def root_error(exc: BaseException) -> BaseException:
    """Hydra wraps errors raised while instantiating; report the original, which names the key."""
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def is_user_error(exc: BaseException) -> bool:
    """Config, data and environment errors symexp raised on purpose: their message starts with the key."""
    if isinstance(exc, (ConfigError, UserError)):
        return True
    if isinstance(exc, (ValueError, FileNotFoundError, ImportError)):
        head = str(exc).split(":", 1)[0]
        return bool(head) and " " not in head and ("." in head or head in {"seed", "resume", "name", "device"})
    return False


def _device_name(trainer) -> str:
    root = trainer.strategy.root_device
    if root.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(root)}"
    return str(root)


def _global_rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def build(cfg: DictConfig) -> dict:
    """Instantiate data, model, syre, task and metrics for cfg; every _target_ receives the member seeds."""
    seeds = member_seeds(cfg.seed, cfg.ensemble.size)
    dm = instantiate(cfg.data, seeds=seeds)
    model = instantiate(cfg.model, seeds=seeds)
    syre = instantiate(cfg.syre, seeds=seeds) if cfg.syre and "_target_" in cfg.syre else None
    task = instantiate(cfg.task, model=model, datamodule=dm, seeds=seeds, syre=syre)
    metrics = {k: instantiate(v) for k, v in (cfg.metric or {}).items() if v is not None}
    return {"seeds": seeds, "datamodule": dm, "model": model, "syre": syre, "task": task, "metrics": metrics}


def extra_callbacks(cfg: DictConfig) -> list:
    """The Lightning callbacks the ``callbacks`` group selects (a dict of _target_ entries; null ones skipped)."""

    out = []
    for name, spec in (cfg.get("callbacks") or {}).items():
        if spec is None:
            continue
        if "_target_" not in spec:
            raise ConfigError(f"callbacks.{name}", "must have a _target_ (a Lightning callback class)")
        out.append(instantiate(spec))
    return out


def _trainer(cfg: DictConfig, task, out_dir: Path, logger, callbacks: list, limits: dict | None = None):
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import Checkpoint

    from symexp.loggers import StepAxis, progress_callbacks

    progress, bar = progress_callbacks(cfg.progress)
    progress = [*progress, StepAxis()]  # the W&B run's one step axis
    kwargs = dict(task.trainer_defaults())
    kwargs.update({k: v for k, v in OmegaConf.to_container(cfg.device).items() if k in TRAINER_KEYS})
    kwargs.update({k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if v is not None})
    kwargs.update(limits or {})
    try:
        return L.Trainer(
            logger=logger if logger is not None else False,
            callbacks=[*callbacks, *progress],
            enable_progress_bar=bar,
            enable_model_summary=False,
            # symexp.checkpointing.PeriodicCheckpoint writes the checkpoints; never Lightning's default one
            enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
            default_root_dir=str(out_dir),
            deterministic=cfg.deterministic,
            **kwargs,
        )
    except (MisconfigurationException, ValueError, TypeError) as exc:  # a value Lightning refused
        raise trainer_error(exc, cfg) from None


def _members(seeds, status, computed) -> list[dict]:
    rows = []
    for k, seed in enumerate(seeds):
        metrics = {}
        for key, value in computed.items():
            metrics[key] = value[k] if isinstance(value, list) else float(torch.as_tensor(value).flatten()[k])
        rows.append({"seed": seed, "status": status[k], "metrics": metrics})
    return rows


def _summary(members: list[dict]) -> dict:
    from symexp.symmetry.callback import median

    ok = [m for m in members if m["status"] == "ok"] or members
    keys = list(ok[0]["metrics"]) if ok else []
    out = {}
    for key in keys:
        values = [m["metrics"][key] for m in ok]
        out[key] = median(values) if isinstance(values[0], str) else median(torch.tensor(values))
    return out


def _write_failure(out_dir: Path, payload: dict, previous: dict | None) -> Path:
    """A failed run never replaces a good results.json: the failure goes beside it."""
    keep = previous is not None and previous.get("status") in ("ok", "diverged")
    path = out_dir / (FAILED_RESULTS if keep else RESULTS)
    write_json_atomic(path, payload)
    return path


def _fallbacks(out_dir: Path, folder: jobfolder.Folder, decision) -> dict[Path, str]:
    """What the run does instead of using each unreadable file, for the warning line."""
    skip = decision is not None and decision.action == "skip"
    return {
        out_dir / jobfolder.CHECKPOINT: "the job is finished: skipped" if skip else "fresh start",
        out_dir / fp.FILE: "recovered from results.json or the checkpoint" if folder.recorded else "rewritten",
        out_dir / RESULTS: "the job runs again",
        out_dir / jobfolder.WANDB_ID: "a new W&B run id",
    }


def _set_aside(out_dir: Path, folder: jobfolder.Folder, decision) -> list[str]:
    notes = jobfolder.set_aside_corrupt(folder, _fallbacks(out_dir, folder, decision))
    for note in notes:
        log.warning("%s", note)
    return notes


def _accept(cfg: DictConfig, out_dir: Path, folder: jobfolder.Folder, decision) -> list[str]:
    """The run is accepted: only now does it write into its folder (Hydra's files, unreadable files moved
    aside). Returns the notes for results.json's warnings."""
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    jobfolder.save_hydra_files(out_dir, cfg)
    return _set_aside(out_dir, folder, decision)


def _skip(out_dir: Path, folder: jobfolder.Folder, decision, run_name: str, config: dict) -> float | None:
    """A finished job with this config: nothing to compute. The folder is repaired where it can be (an
    unreadable file moved aside, fingerprint.json rewritten, the failure record of a superseded attempt
    removed); a read-only folder is left as it is."""
    jobfolder.drop_file_logs(out_dir)
    try:
        if folder.corrupt:
            _set_aside(out_dir, folder, decision)
            if not (out_dir / fp.FILE).exists():
                fp.write(out_dir, config)
        if (out_dir / FAILED_RESULTS).exists():
            (out_dir / FAILED_RESULTS).unlink()
    except OSError as exc:
        log.warning("could not tidy %s (%s); the job is finished all the same", out_dir, exc)
    log.info("job %s already finished with this config (%s): skipped", run_name, out_dir / RESULTS)
    return folder.results.get("objective")


def _refused(exc: Refused, out_dir: Path, run_name: str, multirun: bool) -> None:
    """A refused rerun changes nothing in the folder: one line on the console (a sweep also records the
    refusal in its own folder, for its summary and exit code)."""
    jobfolder.drop_file_logs(out_dir)
    if multirun:
        from symexp.sweepcheck import record_refusal

        log.error("job %s refused: %s", run_name, exc)
        record_refusal(HydraConfig.get(), str(exc))
        return
    raise SystemExit(f"symexp: configuration error: {exc}") from None


def _write_artefact(payload: dict, what: str, make, *args):
    """An optional artefact (figures, images, audit) that fails becomes a warning in results.json, never
    a lost result."""
    try:
        return make(*args)
    except Exception as exc:
        reason = jobfolder.disk_error(exc) or f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        payload.setdefault("warnings", []).append(f"{what} failed: {reason}")
        log.warning("%s failed (%s); the results are kept", what, reason)
        return None


def _write_interrupted(out_dir: Path, payload: dict, previous: dict | None, stop: signals.JobInterrupted,
                       trainer, t0: float) -> None:
    """results.json of a job a signal stopped: the signal, where training stood, the metrics logged so far
    and the checkpoint a rerun continues."""
    ckpt = out_dir / "checkpoints" / "last.ckpt"
    payload.update(
        status=signals.INTERRUPTED, signal=signals.signal_name(stop.signum),
        error=signals.interrupted_message(stop, ckpt),
        metrics=signals.logged_metrics(trainer), checkpoint=str(ckpt.relative_to(out_dir)) if ckpt.exists() else None,
    )
    payload["timing"] = {**payload.get("timing", {}), "wall_s": time.time() - t0}
    _write_failure(out_dir, payload, previous)


def _interrupted(stop: signals.JobInterrupted, run_name: str, out_dir: Path, payload: dict, previous: dict | None,
                 logger, trainer, t0: float, rank: int, multirun: bool) -> None:
    """After a signal: results.json says interrupted, the W&B run closes with the exit code, submitit's own
    handler (requeue) runs, and a single run exits 128 + signal; in a sweep the next jobs do not start."""
    signals.set_phase("idle")
    code = signals.exit_code(stop.signum)
    if rank == 0:
        _write_interrupted(out_dir, payload, previous, stop, trainer, t0)
        log.error("job %s %s (%s; exit %d)", run_name, payload["error"], out_dir, code)
    if logger is not None:
        from symexp.loggers import finish

        finish(logger, failed=True, error=payload["error"], status=signals.INTERRUPTED, exit_code=code)
    signals.after_stop(stop.signum)
    if multirun:
        return None
    raise SystemExit(code)


def _checkpoint_callback(cfg: DictConfig, out_dir: Path, config: dict, fingerprint: str):
    from symexp.checkpointing import PeriodicCheckpoint

    every = cfg.get("checkpoint") or {}
    return PeriodicCheckpoint(
        out_dir / "checkpoints", every_n_epochs=every.get("every_n_epochs"), every_minutes=every.get("every_minutes"),
        every_fraction=every.get("every_fraction"), config=config, fingerprint=fingerprint,
    )


def _log_summary(logger, payload: dict, figures: dict, headline=None) -> None:
    """The final metrics (the members' medians, then each member's), figures and summary in the logger."""
    from symexp.loggers import log_members

    summary = payload["metrics"]
    logger.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
    log_members(logger, payload["members"], headline)
    if hasattr(logger, "log_image"):
        for key, path in figures.items():
            logger.log_image(key=f"figures/{key}", images=[str(path)])
    experiment = getattr(logger, "experiment", None)
    if experiment is not None and hasattr(getattr(experiment, "summary", None), "update"):
        experiment.summary.update({k: v for k, v in summary.items()})
        experiment.summary["status"] = payload["status"]


def _eval_limits(ckpt: Path) -> dict:
    """Trainer limits that make fit() restore an (interrupted or finished) checkpoint and train no further."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    loops = state.get("loops", {}).get("fit_loop", {})
    epochs_done = loops.get("epoch_progress", {}).get("current", {}).get("completed", state.get("epoch", 0))
    return {"max_epochs": int(epochs_done), "max_steps": -1}


def run(cfg: DictConfig, job_dir: Path | None = None, *, checkpoint: Path | None = None,
        job_type: str = "train") -> float | None:
    """Run one job; always writes results.json (or results.failed.json beside a good one) and finishes its
    logger run, even when the job fails. ``checkpoint`` evaluates that checkpoint instead of training."""
    t0 = time.time()
    ctx_dir, run_name, group, multirun = _job_context(cfg)
    out_dir = Path(job_dir) if job_dir is not None else ctx_dir
    rank = _global_rank()
    previous = jobfolder.readable_results(out_dir) if rank == 0 else None  # a failure never replaces it
    payload = {
        "schema": SCHEMA, "status": "failed", "error": None, "name": cfg.name, "seed": cfg.seed,
        "fingerprint": None, "config": None, "metrics": {}, "members": [], "timing": {}, "env": {},
        "warnings": [],
    }
    logger = trainer = None
    with job_log(out_dir) as jlog:
        try:
            signals.start_job(keep_state=multirun)
            config = resolve_config(cfg)
            payload["config"] = config
            payload["fingerprint"] = fingerprint = fp.fingerprint(config)
            folder = jobfolder.inspect(out_dir)  # reads only: nothing is written before the run is accepted
            decision = None
            if checkpoint is None:
                decision = decide(folder, config, str(cfg.resume))
                if decision.action == "skip":
                    return _skip(out_dir, folder, decision, run_name, config) if rank == 0 else None
                if signals.received() is not None:
                    if rank == 0:  # recorded, so the summary lists it; a rerun runs it
                        signum = signals.received()
                        signals.record(out_dir, signals.NOT_STARTED, signals.not_started_error(signum), signum,
                                       name=cfg.name, seed=cfg.seed)
                    log.warning("job %s not started: the sweep was interrupted", run_name)
                    return None
                ckpt = decision.checkpoint
            else:
                ckpt = Path(checkpoint)
            if rank == 0:
                payload["warnings"] = _accept(cfg, out_dir, folder, decision)
            if decision is not None and decision.note:
                log.warning("%s", decision.note)
            from symexp.loggers import build_logger, finish

            if rank == 0:  # before validation, so a job that fails at once still has its W&B run
                logger = build_logger(cfg, out_dir, run_name, group, job_type=job_type)
            validate(cfg)
            if rank == 0:
                if checkpoint is None:
                    fp.write(out_dir, config)
                OmegaConf.save(OmegaConf.create(config), out_dir / RESOLVED)
            jlog.info("job %s (%s) in %s, fingerprint %s, %s", run_name, job_type, out_dir, fingerprint,
                      f"continuing {ckpt}" if ckpt else "fresh start")
            import lightning as L

            from symexp.console import quiet_console
            from symexp.symmetry.callback import SymmetryMetrics

            quiet_console()

            L.seed_everything(cfg.seed, workers=True, verbose=False)
            parts = build(cfg)
            task, seeds = parts["task"], parts["seeds"]
            sym_cb = SymmetryMetrics(parts["metrics"])
            callbacks = [sym_cb, *extra_callbacks(cfg)]
            if cfg.save_checkpoints and checkpoint is None:
                callbacks.append(_checkpoint_callback(cfg, out_dir, config, fingerprint))
            else:
                from symexp.checkpointing import SafeStop

                callbacks.append(SafeStop())
            if ckpt is None and checkpoint is None and cfg.get("ckpt_path"):
                from symexp.checkpointing import start_checkpoint

                ckpt = start_checkpoint(cfg.ckpt_path, task)
                jlog.info("starting from %s (ckpt_path)", ckpt)
            limits = _eval_limits(ckpt) if checkpoint is not None else None
            trainer = _trainer(cfg, task, out_dir, logger, callbacks, limits)
            if logger is not None:
                n_params = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
                logger.log_hyperparams({"params/trainable": n_params, "seeds": seeds})
            t_fit = time.time()
            # a signal stops the fit at its next checkpoint; every member diverged: the task holds the reason
            with signals.phase("training"), contextlib.suppress(Diverged):
                trainer.fit(task, datamodule=parts["datamodule"], ckpt_path=str(ckpt) if ckpt else None)
            signals.raise_if_received()  # one that came in the last epoch
            fit_s = time.time() - t_fit
            if not trainer.is_global_zero:
                return None  # DDP: rank zero alone evaluates and writes the job's files
            task.restore_best()
            divergence = task.whole_run_diverged()  # metrics of NaN parameters would only raise or mislead
            if divergence is not None:
                log.warning("job %s: %s; no metrics computed", run_name, divergence)
            computed = sym_cb.compute(task) if divergence is None else {}
            status = task.member_status()
            members = _members(seeds, status, computed)
            summary = _summary(members)
            steps = int(getattr(task, "data_step", trainer.global_step))
            objective = task.objective(summary)
            payload.update(
                status="diverged" if all(s == "diverged" for s in status) else "ok",
                error=divergence,
                metrics=summary,
                members=members,
                objective=objective,
                figures={},
                timing={
                    "wall_s": time.time() - t0, "fit_s": fit_s, "train_steps": steps,
                    "model_steps_per_s": steps * len(seeds) / max(fit_s, 1e-9),
                    "resumed_from": str(ckpt) if ckpt else None,
                },
                env={**environment(Path(cfg.paths.root), _device_name(trainer)), "engine": task.engine_info()},
            )
            # the results first (atomically), then the optional artefacts: a figure that fails is a warning
            write_json_atomic(out_dir / RESULTS, payload)
            signals.set_phase("idle")  # the result is written: a signal now only stops a sweep's next jobs
            previous = dict(payload)  # from here on a failure never replaces these results
            (out_dir / FAILED_RESULTS).unlink(missing_ok=True)  # an earlier attempt's failure is superseded
            figures = {} if divergence else _write_artefact(payload, "figures", task.figures, out_dir / "figures") or {}
            payload["figures"] = {k: str(Path(v).relative_to(out_dir)) for k, v in figures.items()}
            if logger is not None:
                _write_artefact(payload, "W&B summary", _log_summary, logger, payload, figures, task.headline_metrics())
            if figures or payload["warnings"]:
                _write_artefact(payload, "results.json update", write_json_atomic, out_dir / RESULTS, payload)
            jlog.info("job %s %s in %.1f s: %s", run_name, payload["status"], time.time() - t0,
                      ", ".join(f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, float) and "/block" not in k)[:2000])
            print_table(cfg.name, members, summary, task.headline_metrics())
            finish(logger, failed=False)
            if cfg.get("audit"):  # +audit=on: symexp.audit's report of the trained model in <job>/audit/
                from symexp.audit.callback import audit_run

                _write_artefact(payload, "audit", audit_run, cfg, task, out_dir)
            if not multirun and job_type == "train":
                print_where(out_dir)
            return objective
        except Refused as exc:
            return _refused(exc, out_dir, run_name, multirun)
        except signals.JobInterrupted as stop:  # checkpoint saved (at a safe point): record, close, exit 128+signal
            return _interrupted(stop, run_name, out_dir, payload, previous, logger, trainer, t0, rank, multirun)
        except Exception as exc:  # record, finish the logger run, then fail (or let the sweep go on)
            signals.set_phase("idle")  # a signal now must not interrupt writing the failure
            root = root_error(exc)
            disk = jobfolder.disk_error(root)
            if disk:  # the folder cannot take the record nor the log: one line naming it
                jobfolder.drop_file_logs(out_dir)
                root = UserError(f"{out_dir}: {disk} writing {getattr(root, 'filename', None) or 'a file'}")
            payload["status"], payload["error"] = "failed", f"{type(root).__name__}: {root}"
            payload["traceback"] = traceback.format_exc()
            payload["timing"] = {"wall_s": time.time() - t0}
            where = out_dir
            if rank == 0:
                try:
                    where = _write_failure(out_dir, payload, previous)
                except OSError as write_exc:
                    log.error("could not record the failure in %s (%s)", out_dir, jobfolder.disk_error(write_exc) or write_exc)
            if not disk:
                log_traceback(jlog, payload["traceback"])
            user = is_user_error(root) or bool(disk)
            kind = "configuration" if isinstance(root, ConfigError) or user else "internal"
            log.error("job %s failed (%s error, details in %s): %s", run_name, kind, where, payload["error"])
            if logger is not None:
                from symexp.loggers import finish

                finish(logger, failed=True, error=payload["error"])
            if multirun:
                return None
            if disk:
                raise SystemExit(f"symexp: disk error: {root}") from None
            if user:
                raise SystemExit(f"symexp: {kind} error: {root}") from None
            raise
        finally:
            signals.end_job(give_back_handlers=not multirun)
