"""Where metrics go: one W&B run per Hydra job (offline unless the user opts in), or CSV, or nothing;
and how progress shows: a Rich bar in a terminal, plain periodic lines in cluster logs.

W&B identity. A job's run id is stored in ``<job>/wandb_id`` and reused with ``resume="allow"``, so a
resumed job (or a rerun into the same folder) continues the same run, offline too (``wandb sync`` merges
the offline folders of one id). Precedence for ``logger.mode/project/entity``: a value set in the config
(preset or command line) wins; ``auto``/``null`` defers to ``WANDB_MODE``/``WANDB_PROJECT``/``WANDB_ENTITY``;
then offline / ``symexp`` / W&B's default entity. An online run that cannot reach the server within
``logger.init_timeout`` seconds falls back to an offline run with the same id and one warning line.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import shutil
import string
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import RichProgressBarTheme
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("symexp")
WANDB_MODES = ("offline", "online", "disabled")
_ENV_MODES = {"offline": "offline", "dryrun": "offline", "online": "online", "run": "online", "disabled": "disabled"}
ID_FILE = "wandb_id"
DEFAULT_INIT_TIMEOUT_S = 30.0
# overrides that say where or how a job logs, not what it computes: left out of run names
_NOT_IN_NAME = ("paths.", "logger.", "progress", "hydra.", "resume", "save_checkpoints", "name")


def _select(cfg: Any, key: str, default: Any = None) -> Any:
    """cfg[key] or default, for any config, even one whose values are broken (failing interpolations)."""
    try:
        value = OmegaConf.select(cfg, key, default=default) if isinstance(cfg, DictConfig) else None
    except Exception:  # an unresolvable value must not stop the logger that records the failure
        return default
    if value is None and isinstance(cfg, Mapping):
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        value = node
    return default if value is None else value


def wandb_identity(logger_cfg: Any) -> dict[str, Any]:
    """project, entity, mode and init_timeout after the precedence rule: config value > WANDB_* env > default."""
    mode = _select(logger_cfg, "mode", "auto")
    if mode not in WANDB_MODES:  # auto (or null): the environment decides, offline when it does not say
        mode = _ENV_MODES.get(os.environ.get("WANDB_MODE", "").strip().lower(), "offline")
    timeout = _select(logger_cfg, "init_timeout", DEFAULT_INIT_TIMEOUT_S)
    return {
        "project": _select(logger_cfg, "project") or os.environ.get("WANDB_PROJECT") or "symexp",
        "entity": _select(logger_cfg, "entity") or os.environ.get("WANDB_ENTITY") or None,
        "mode": mode,
        "init_timeout": float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else DEFAULT_INIT_TIMEOUT_S,
    }


def _server_address(base_url: str) -> tuple[str, int]:
    """Where a connection to the W&B server goes: its host and port, or the proxy's when one applies."""
    import urllib.request
    from urllib.parse import urlparse

    url = urlparse(base_url)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return p.hostname or host, p.port or 80
    return host, port


def unreachable(base_url: str, timeout: float) -> str | None:
    """Why the W&B server cannot be reached within ``timeout`` seconds (None: a TCP connection opened).

    wandb.init would otherwise retry a refused or unresolvable server until its own timeouts run out, and
    then take as long again to start the offline run; a failed probe goes offline at once. The probe runs
    in a thread so that a hanging DNS lookup is bounded too."""
    import socket
    import threading

    host, port = _server_address(base_url)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc.strerror or type(exc).__name__}")

    thread = threading.Thread(target=probe, name="symexp-wandb-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"{host}:{port}: no answer within {timeout:g}s"


def _online_settings(wandb, timeout: float):
    """Settings for an online init that stays within ``timeout``: wandb's own init timeout, and no account
    lookup (wandb resolves the user name for its "logged in as" line with retried requests before the
    init timeout even starts; symexp does not need it)."""
    settings = {"init_timeout": max(timeout, 1.0)}
    if "x_disable_viewer" in type(wandb.Settings()).model_fields:
        wandb.setup(settings=wandb.Settings(x_disable_viewer=True))
    return wandb.Settings(**settings)


def _check_env_mode() -> None:
    """wandb validates WANDB_MODE itself, with a pydantic traceback: an empty value means unset, any other
    unknown one is refused here in one line."""
    from symexp.schema import ConfigError

    value = os.environ.get("WANDB_MODE")
    if value is not None and not value.strip():
        del os.environ["WANDB_MODE"]
    elif value is not None and value.strip().lower() not in _ENV_MODES:
        raise ConfigError("WANDB_MODE", f"got {value!r} (environment); allowed {', '.join(_ENV_MODES)}, or unset")


def init_run(mode: str, init_timeout: float, **kwargs: Any):
    """``wandb.init``; an online init that cannot reach the server within ``init_timeout`` seconds in total
    (no network, server down, a wrong WANDB_BASE_URL) warns once and returns an offline run with the same
    id, so results never depend on the network."""
    import wandb

    started, wall_started = time.monotonic(), time.time()
    if mode != "online":
        return wandb.init(mode=mode, **kwargs)
    from wandb.sdk import wandb_setup

    why = unreachable(wandb_setup.singleton().settings.base_url, min(init_timeout, 10.0))
    if why is None:
        try:
            left = init_timeout - (time.monotonic() - started)
            return wandb.init(mode="online", settings=_online_settings(wandb, left), **kwargs)
        except Exception as exc:
            why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            wandb.teardown()  # the service still holds the failed run's id
            _remove_failed_online_dir(kwargs.get("dir"), kwargs.get("id"), wall_started)
    run = wandb.init(mode="offline", **kwargs)
    log.warning("W&B online init failed within %gs (%s); logging offline, upload later: wandb sync %s",
                init_timeout, why, Path(run.dir).parent if run.dir else kwargs.get("dir"))
    return run


def _remove_failed_online_dir(root: str | None, run_id: str | None, since: float) -> None:
    """The failed online attempt leaves a run-<time>-<id> folder holding no data; `wandb sync` of the job
    would upload it beside the offline run. Earlier (successful) online folders of the same id stay."""
    if not root or not run_id:
        return
    for folder in (Path(root) / "wandb").glob(f"run-*-{run_id}"):
        if folder.is_dir() and folder.stat().st_ctime >= since - 1:
            shutil.rmtree(folder, ignore_errors=True)


def job_run_id(out_dir: Path, fresh: bool = False) -> str:
    """The job's W&B run id, created once and stored in the job folder (``fresh``: a new one)."""
    path = Path(out_dir) / ID_FILE
    if path.exists() and not fresh:
        stored = path.read_text().strip()
        if stored:
            return stored
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's format
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def summary_run_id(sweep_dir: Path) -> str:
    """A sweep summary's deterministic id: rerunning the report updates the same run."""
    root = Path(sweep_dir).resolve()
    digest = hashlib.sha1(f"{root.parent.name}/{root.name}".encode()).hexdigest()[:16]
    return f"summary-{digest}"


def _hydra_context() -> tuple[dict, list[str], bool]:
    """Hydra's group choices, the job's overrides and whether it is a multirun job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}, [], False
    hc = HydraConfig.get()
    choices = {k: v for k, v in OmegaConf.to_container(hc.runtime.choices).items() if not k.startswith("hydra/")}
    return choices, list(hc.overrides.task), hc.mode == RunMode.MULTIRUN


def _choice(cfg: Any, choices: dict, group: str) -> str | None:
    if choices.get(group) is not None:
        return str(choices[group])
    target = _select(cfg, f"{group}._target_")
    return str(target).rsplit(".", 1)[-1].lower() if target else None


def default_tags(cfg: Any, choices: dict) -> list[str]:
    """experiment:/model:/data:/syre: tags (W&B filters on them), then cfg.tags and logger.tags."""
    tags = [f"experiment:{_choice(cfg, choices, 'experiment') or _select(cfg, 'name', 'run')}"]
    for group in ("model", "data", "syre", "task"):
        value = _choice(cfg, choices, group)
        if value:
            tags.append(f"{group}:{value}")
    for extra in (_select(cfg, "tags", []) or []), (_select(cfg, "logger.tags", []) or []):
        tags += [str(t) for t in extra] if isinstance(extra, (list, tuple)) or OmegaConf.is_list(extra) else []
    return list(dict.fromkeys(t[:64] for t in tags))  # W&B caps a tag at 64 characters


def display_name(run_name: str, overrides: list[str], multirun: bool) -> str:
    """In a multirun, the job's run name shows its overrides (e.g. ``rflr_table1/3 seed=2 model.rank=8``)."""
    if not multirun:
        return run_name
    shown = [o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(_NOT_IN_NAME)]
    return f"{run_name} {' '.join(shown)}".strip()


def _run_config(cfg: Any, choices: dict, overrides: list[str]) -> dict:
    """The resolved config (unresolved where resolving fails: a bad config still gets its run), plus Hydra's."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        try:
            config = OmegaConf.to_container(cfg, resolve=False)
        except Exception:
            config = {}
    if choices or overrides:
        config["hydra"] = {"choices": choices, "overrides": overrides}
    return config


def build_logger(cfg: DictConfig, out_dir: Path, run_name: str, group: str | None,
                 job_type: str = "train") -> Logger | None:
    """The job's logger. For W&B: the run is created now (so a job that fails at once still has one),
    with the id stored in the job folder, job_type, default tags and Hydra's choices and overrides.
    Never raises on a bad config: validation reports that, and this run records the failure."""
    backend = _select(cfg, "logger.backend", "none")
    out_dir = Path(out_dir)
    if backend == "csv":
        return CSVLogger(save_dir=str(out_dir), name="csv", version="")
    if backend != "wandb":
        return None
    os.environ.setdefault("WANDB_SILENT", "true")
    _check_env_mode()
    ident = wandb_identity(_select(cfg, "logger", {}))
    choices, overrides, multirun = _hydra_context()
    (out_dir / "wandb").mkdir(parents=True, exist_ok=True)
    kwargs = dict(
        project=ident["project"], entity=ident["entity"], name=display_name(run_name, overrides, multirun),
        group=_select(cfg, "logger.group") or group, tags=default_tags(cfg, choices), job_type=job_type,
        dir=str(out_dir), config=_run_config(cfg, choices, overrides), resume="allow", reinit="finish_previous",
    )
    if rank_zero_only.rank != 0:  # DDP workers: Lightning's logger gives them a dummy experiment
        return WandbLogger(save_dir=str(out_dir), **kwargs)
    kwargs["id"] = job_run_id(out_dir, fresh=_select(cfg, "resume") in ("never", False))
    run = init_run(ident["mode"], ident["init_timeout"], **kwargs)
    run.define_metric("trainer/global_step")
    run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    logger = WandbLogger(experiment=run, save_dir=str(out_dir), project=ident["project"])
    logger.symexp_job = {"out_dir": out_dir, "log_artifacts": _select(cfg, "logger.log_artifacts", False) is True,
                         "job_type": job_type}
    return logger


def finish(logger: Logger | None, failed: bool, error: str | None = None) -> None:
    """Close the job's W&B run with ``status`` (and ``error``) in its summary, marked failed when the job
    failed; online with ``logger.log_artifacts``, results.json and the last checkpoint become artifacts."""
    if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0:
        return
    run = logger._experiment
    if run is None or getattr(run, "_is_finished", False):
        return
    if failed:
        run.summary["status"] = "failed"
    elif "status" not in run.summary.keys():
        run.summary["status"] = "ok"
    run.summary["error"] = error if failed else None
    job = getattr(logger, "symexp_job", {})
    if job.get("log_artifacts") and not run.settings._offline and not run.settings._noop:
        _log_artifacts(run, Path(job["out_dir"]), job.get("job_type", "train"))
    run.finish(exit_code=1 if failed else 0)


def _log_artifacts(run, out_dir: Path, job_type: str) -> None:
    import wandb

    files = [p for p in (out_dir / "results.json", out_dir / "checkpoints" / "last.ckpt") if p.exists()]
    if not files:
        return
    artifact = wandb.Artifact(f"{job_type}-{run.id}", type="symexp-job",
                              metadata={"job": str(out_dir), "files": [p.name for p in files]})
    for path in files:
        artifact.add_file(str(path), name=str(path.relative_to(out_dir)))
    run.log_artifact(artifact)


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.3g}"


class PlainProgress(L.Callback):
    """One line every ``interval_s`` seconds (and at the end) with the task's progress and its latest metrics.

    The line for an epoch is written when the next one starts (or training ends), after the task's own
    epoch-end logging, so it never shows the previous epoch's numbers. Progress is the task's own budget
    when it declares one (``task.progress()``: data epochs, env steps), else Lightning's epochs, or steps
    for step-budgeted tasks (``max_epochs=-1``)."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s, self._last, self._pending = interval_s, 0.0, False

    @staticmethod
    def position(trainer: L.Trainer, pl_module: L.LightningModule, epochs_done: int) -> str:
        own = pl_module.progress() if hasattr(pl_module, "progress") else None
        if own is not None:
            unit, done, total = own
            return f"{unit} {done}/{total}"
        if trainer.max_epochs is None or trainer.max_epochs < 0:
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
            return f"step {trainer.global_step}/{total}"
        return f"epoch {epochs_done}/{trainer.max_epochs}"

    def _line(self, trainer: L.Trainer, pl_module: L.LightningModule, epochs_done: int) -> None:
        self._last, self._pending = time.monotonic(), False
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 0)() == 1}
        text = "  ".join(f"{k}={_fmt(v)}" for k, v in sorted(shown.items()))
        print(f"[symexp] {self.position(trainer, pl_module, epochs_done)}  {text}".rstrip(), flush=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = time.monotonic() - self._last >= self.interval_s

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending:  # the epoch that just ended, now with everything the task logged at its end
            self._line(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._line(trainer, pl_module, trainer.current_epoch)


def progress_callbacks(style: str) -> tuple[list[L.Callback], bool]:
    """Callbacks for the progress style and whether Lightning's own bar stays enabled."""
    if style == "auto":
        style = "rich" if sys.stdout.isatty() else "plain"
    if style == "rich":  # 3 significant digits: a loss of 2e-5 must not read 0.000
        return [RichProgressBar(leave=True, theme=RichProgressBarTheme(metrics_format=".3g"))], True
    if style == "plain":
        return [PlainProgress()], False
    return [], False
