"""Where metrics go: one W&B run per Hydra job (offline unless the user opts in), or CSV, TensorBoard or nothing;
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
import json
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
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("symexp")
WANDB_MODES = ("offline", "online", "disabled")
_ENV_MODES = {"offline": "offline", "dryrun": "offline", "online": "online", "run": "online", "disabled": "disabled"}
ID_FILE = "wandb_id"
RUN_FILE = "wandb_run.json"  # the training run's name, group, tags, project, entity: eval and audit runs follow it
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
    """In a multirun, the job's run name shows its overrides (e.g. ``rflr_table1/3 seed=2 model.rank=8``);
    ``experiment=X`` is left out when the name already starts with X (the name is the experiment)."""
    if not multirun:
        return run_name
    shown = [o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(_NOT_IN_NAME)]
    shown = [o for o in shown if not (o.startswith("experiment=") and run_name.startswith(o.split("=", 1)[1] + "/"))]
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


def save_run_identity(out_dir: Path, run_kwargs: dict) -> None:
    """Write the training run's identity beside its id, for the eval and audit runs of the job."""
    keep = {k: run_kwargs.get(k) for k in ("name", "group", "tags", "project", "entity")}
    path = Path(out_dir) / RUN_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**keep, "id": run_kwargs.get("id")}, indent=1))
    tmp.replace(path)


def trained_run(job_dir: Path | str | None) -> dict | None:
    """The identity of the training run of a job folder: its wandb_run.json, else (a job trained before that
    file existed) name, group and tags rebuilt from the folder's Hydra record; None outside a job folder."""
    if not job_dir:
        return None
    job_dir = Path(job_dir)
    try:
        return json.loads((job_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        pass
    hydra_file = job_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.is_file():
        return None
    hc = (OmegaConf.load(hydra_file).get("hydra") or {})
    choices = {k: v for k, v in (OmegaConf.to_container(hc.runtime.choices) or {}).items() if not k.startswith("hydra/")}
    config = OmegaConf.load(job_dir / "config.resolved.yaml") if (job_dir / "config.resolved.yaml").is_file() else {}
    name = str(choices.get("experiment") or _select(config, "name", "run"))
    multirun = str(hc.get("mode")) == "MULTIRUN"
    sweep = Path(str(hc.sweep.dir)) if multirun else None
    run_name = display_name(f"{name}/{hc.job.num if multirun else job_dir.name}", list(hc.overrides.task), multirun)
    return {"name": run_name, "group": f"{sweep.parent.name}/{sweep.name}" if sweep else None,
            "tags": default_tags(config, choices), "project": None, "entity": None,
            "id": (job_dir / ID_FILE).read_text().strip() if (job_dir / ID_FILE).is_file() else None}


def follow_training_run(kwargs: dict, job_dir: Path | str | None, job_type: str) -> dict:
    """An eval or audit run's W&B name, group and tags follow its training run (``<name> [eval]``, same
    group, same tags plus the job type), so the filters that find the training run find it too."""
    like = trained_run(job_dir)
    if not like:
        return kwargs
    own = [t for t in kwargs.get("tags") or [] if not t.startswith(("experiment:", "model:", "data:", "syre:", "task:"))]
    out = {**kwargs, "name": f"{like['name']} [{job_type}]", "group": like.get("group") or kwargs.get("group"),
           "tags": list(dict.fromkeys([*(like.get("tags") or []), job_type, *own]))}
    if isinstance(out.get("config"), dict) and like.get("id"):
        out["config"] = {**out["config"], "trained_run": like["id"]}
    return out


def build_logger(cfg: DictConfig, out_dir: Path, run_name: str, group: str | None,
                 job_type: str = "train") -> Logger | None:
    """The job's logger. For W&B: the run is created now (so a job that fails at once still has one),
    with the id stored in the job folder, job_type, default tags and Hydra's choices and overrides.
    Never raises on a bad config: validation reports that, and this run records the failure."""
    backend = _select(cfg, "logger.backend", "none")
    out_dir = Path(out_dir)
    if backend == "csv":
        return CSVLogger(save_dir=str(out_dir), name="csv", version="")
    if backend == "tensorboard":  # event files in <job>/tensorboard; `tensorboard --logdir outputs/` reads them all
        return TensorBoardLogger(save_dir=str(out_dir), name="tensorboard", version="", default_hp_metric=False)
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
    if job_type != "train":  # an evaluation inside a job folder (<job>/eval): named like the job's run
        kwargs = follow_training_run(kwargs, out_dir.parent, job_type)
    if rank_zero_only.rank != 0:  # DDP workers: Lightning's logger gives them a dummy experiment
        return WandbLogger(save_dir=str(out_dir), **kwargs)
    kwargs["id"] = job_run_id(out_dir, fresh=_select(cfg, "resume") in ("never", False))
    if job_type == "train":
        save_run_identity(out_dir, kwargs)
    run = init_run(ident["mode"], ident["init_timeout"], **kwargs)
    logger = StepAxisWandbLogger(experiment=run, save_dir=str(out_dir), project=ident["project"])
    logger.references = _references(kwargs["config"])
    logger.symexp_job = {"out_dir": out_dir, "log_artifacts": _select(cfg, "logger.log_artifacts", False) is True,
                         "job_type": job_type}
    return logger


def _references(config: dict) -> dict[str, float]:
    """The paper's numbers for this run's config (``paper/<metric>``); none when the paper states none."""
    from symexp.dashboard.references import paper_values

    try:
        return paper_values(config)
    except Exception:  # a broken config still gets its run; it just has no reference lines
        return {}


class StepAxisWandbLogger(WandbLogger):
    """A W&B logger with one step axis per run and one history row per axis value.

    Lightning logs train and val metrics in separate calls, each with ``trainer/global_step`` (optimizer
    steps) and its own ``epoch`` (Lightning epochs, which for symexp's chunked tasks are validation
    intervals), so W&B's history mixed two axes and split one step into several rows. Here every row
    carries one axis, the task's own budget unit (``epoch`` in data epochs, ``env_step``, or ``step`` for
    step-budgeted tasks; the unit the plain progress lines show), declared with ``define_metric`` as the
    step metric of every other key; calls at the same axis value merge into one row (during training a
    key logged twice with two values starts a second row at the same axis value), written when the
    axis moves on or the run finishes (``finish``: the final metrics share the last training row). The
    paper's reference values (``references``) go into the first and last rows, so a line plot draws each
    as a horizontal line."""

    LIGHTNING_AXES = ("epoch", "trainer/global_step")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position: Any = None  # () -> (axis name, value); set by StepAxis once the trainer exists
        self.references: dict[str, float] = {}
        self._axis: str | None = None
        self._row: dict[str, Any] = {}
        self._row_at: float | None = None
        self._rows = 0
        self._fit_done = False

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        where = self.position() if self.position is not None else None
        if where is None:  # no trainer (a logger used on its own): W&B's own step
            return super().log_metrics(metrics, step)
        axis, value = where
        if self._axis is None:
            self._axis = axis
            self.experiment.define_metric(axis)
            self.experiment.define_metric("*", step_metric=axis, step_sync=True)
        metrics = {k: v for k, v in metrics.items() if k not in self.LIGHTNING_AXES}
        # during training, a key logged twice at one axis value (two events in one step) starts a second row;
        # after fit, the final metrics overwrite the last training row's values of the same keys
        clash = not self._fit_done and any(k in self._row and self._row[k] != v for k, v in metrics.items())
        if self._row_at is not None and (value != self._row_at or clash):
            self.flush()
        self._row.update(metrics)
        self._row_at = value

    def flush(self, last: bool = False) -> None:
        """Write the pending row (with the references on the first and the ``last`` row)."""
        if self._axis is None or (not self._row and not last) or self._experiment is None:
            return
        row = dict(self._row)
        if self._rows == 0 or last:
            row.update(self.references)
        self.experiment.log({**row, self._axis: self._row_at})
        self._row, self._rows = {}, self._rows + 1

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self._fit_done = True
        super().finalize(status)


def step_axis(trainer: L.Trainer, module: L.LightningModule) -> tuple[str, float]:
    """(name, value) of the run's step axis now: the task's own budget unit when it declares one
    (``progress()``), else steps for step-budgeted tasks, else epochs (fractional within an epoch)."""
    own = module.progress() if hasattr(module, "progress") else None
    if own is not None:
        return str(own[0]).replace(" ", "_"), own[1]
    if trainer.max_epochs is None or trainer.max_epochs < 0:
        return "step", trainer.global_step
    batches = trainer.num_training_batches
    if isinstance(batches, (int, float)) and 0 < batches < math.inf:
        done = trainer.fit_loop.epoch_loop.batch_progress.total.completed / batches
        return "epoch", int(done) if float(done).is_integer() else round(done, 4)
    return "epoch", trainer.current_epoch


class StepAxis(L.Callback):
    """Hands the trainer's position to symexp's W&B logger (its step axis); nothing for other loggers."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, StepAxisWandbLogger):
                logger.position = lambda: step_axis(trainer, pl_module)


MAX_MEMBER_KEYS = 32  # ensembles up to this size log member/<k>/<metric>; larger ones only the members table


def log_members(logger: Logger | None, members: list[dict], patterns: Any = None) -> None:
    """Each ensemble member's final metrics: ``member/<k>/<metric>`` for the headline metrics (ensembles
    of up to MAX_MEMBER_KEYS members) and a ``members`` table with numeric columns (one row per member),
    so the seed spread the medians hide is visible and sortable in W&B."""
    if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0 or not members:
        return
    import wandb

    from symexp.console import headline_keys

    numeric = [k for k, v in members[0]["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    texts = [k for k, v in members[0]["metrics"].items() if isinstance(v, str)]
    table = wandb.Table(columns=["member", "seed", "status", *numeric, *texts], allow_mixed_types=True)
    for k, m in enumerate(members):
        values = m["metrics"]
        table.add_data(k, m.get("seed"), m.get("status"),
                       *[_finite(values.get(key)) for key in numeric], *[str(values.get(key)) for key in texts])
    row: dict[str, Any] = {"members": table}
    if 1 < len(members) <= MAX_MEMBER_KEYS:
        for key in headline_keys(members[0]["metrics"], patterns):
            for k, m in enumerate(members):
                value = _finite(m["metrics"].get(key))
                if value is not None:
                    row[f"member/{k}/{key}"] = value
    logger.log_metrics(row)
    run = logger.experiment
    run.summary.update({k: v for k, v in row.items() if k.startswith("member/")})


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def finish(logger: Logger | None, failed: bool, error: str | None = None, status: str = "failed",
           exit_code: int | None = None) -> None:
    """Close the job's W&B run with ``status`` (and ``error``) in its summary, marked failed (``exit_code``,
    default 1) when the job failed or was interrupted; online with ``logger.log_artifacts``, results.json and
    the last checkpoint become artifacts."""
    if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0:
        return
    run = logger._experiment
    if run is None or getattr(run, "_is_finished", False):
        return
    if failed:
        run.summary["status"] = status
    elif "status" not in run.summary.keys():
        run.summary["status"] = "ok"
    run.summary["error"] = error if failed else None
    if isinstance(logger, StepAxisWandbLogger):
        logger.flush(last=True)
    job = getattr(logger, "symexp_job", {})
    if job.get("log_artifacts") and not run.settings._offline and not run.settings._noop:
        _log_artifacts(run, Path(job["out_dir"]), job.get("job_type", "train"))
    run.finish(exit_code=(exit_code or 1) if failed else 0)


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


def wrap_items(head: str, items: list[str], width: int | None = None) -> str:
    """``head`` and ``key=value`` items two spaces apart, wrapped at the terminal's width (items never
    split; continuation lines indented), so a progress line with many metrics stays readable."""
    from symexp.console import terminal_width

    width = width or terminal_width()
    lines, line = [], head
    for item in items:
        if len(line) + 2 + len(item) > width and line.strip():
            lines.append(line)
            line = " " * 9 + item
        else:
            line = f"{line}  {item}"
    return "\n".join([*lines, line]).rstrip()


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
        items = [f"{k}={_fmt(v)}" for k, v in sorted(shown.items())]
        print(wrap_items(f"[symexp] {self.position(trainer, pl_module, epochs_done)}", items), flush=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = time.monotonic() - self._last >= self.interval_s

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending:  # the epoch that just ended, now with everything the task logged at its end
            self._line(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._line(trainer, pl_module, trainer.current_epoch)


class TaskProgressBar(RichProgressBar):
    """Lightning's Rich bar, counting in the unit of the plain lines (the task's own budget, e.g. data
    epochs, where a Lightning epoch is ``val_every`` of them), 1-based like them."""

    def _get_train_description(self, current_epoch: int) -> str:
        return PlainProgress.position(self.trainer, self.trainer.lightning_module, current_epoch)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the logger's version (a W&B id fragment): not a metric
        return items

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:  # the bar left on screen: done
            self.progress.update(self.train_progress_bar_id,
                                 description=PlainProgress.position(trainer, pl_module, trainer.current_epoch + 1))


class StopMessageInTaskUnits(L.Callback, logging.Filter):
    """Lightning's "`Trainer.fit` stopped: `max_epochs=30` reached." counts Lightning epochs; for a task
    with its own budget it is rewritten in the task's unit ("training stopped: epoch 150/150 reached")."""

    _LOGGER = "lightning.pytorch.utilities.rank_zero"

    def __init__(self) -> None:
        L.Callback.__init__(self)
        logging.Filter.__init__(self)
        self._trainer: L.Trainer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        trainer = self._trainer
        if trainer is not None and msg.startswith("`Trainer.fit` stopped: `max_") and msg.endswith("reached."):
            where = PlainProgress.position(trainer, trainer.lightning_module, trainer.current_epoch)
            record.msg, record.args = f"training stopped: {where} reached", ()
        return True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if hasattr(pl_module, "progress") and pl_module.progress() is not None:
            self._trainer = trainer
            logging.getLogger(self._LOGGER).addFilter(self)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = None
        logging.getLogger(self._LOGGER).removeFilter(self)


def progress_callbacks(style: str) -> tuple[list[L.Callback], bool]:
    """Callbacks for the progress style and whether Lightning's own bar stays enabled."""
    if style == "auto":
        style = "rich" if sys.stdout.isatty() else "plain"
    if style == "rich":  # 3 significant digits: a loss of 2e-5 must not read 0.000
        return [TaskProgressBar(leave=True, theme=RichProgressBarTheme(metrics_format=".3g")),
                StopMessageInTaskUnits()], True
    if style == "plain":
        return [PlainProgress(), StopMessageInTaskUnits()], False
    return [StopMessageInTaskUnits()], False
