"""Hydra callback: what a launch needs, checked before Hydra creates any folder or starts any job.

An empty output path (``hydra.run.dir=``, ``paths.output_root=''``) would write a job into the current
directory; a launcher that cannot start here (SLURM without ``srun``/``sbatch``) or a launcher or Optuna
sweeper option its library rejects (``n_jobs=0``, ``direction=up``, ``n_trials=0``) would end in a traceback
from deep inside the plugin. Each fails here with one line naming the key. Values of the job itself are
checked in the job (symexp.schema.validate), where a sweep records the failure and goes on.
"""

from __future__ import annotations

import shutil
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from symexp.schema import ConfigError
from symexp.validation import NULL, POS_INT, SEED, Check, choice, integer, number

NONEMPTY_PATH = Check(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty path")
NONNEG_INT = integer(0)
DIRECTION = choice("minimize", "maximize")

# (fragment of hydra.<kind>._target_, key, check)
PLUGIN_RULES: tuple[tuple[str, str, Check], ...] = (
    ("joblib", "n_jobs", Check(lambda v: isinstance(v, int) and not isinstance(v, bool) and v != 0,
                               "an integer other than 0 (-1: all cores)") | NULL),
    ("joblib", "backend", choice("loky", "threading", "multiprocessing") | NULL),
    ("submitit", "timeout_min", POS_INT),
    ("submitit", "cpus_per_task", POS_INT | NULL),
    ("submitit", "gpus_per_node", NONNEG_INT | NULL),
    ("submitit", "tasks_per_node", POS_INT),
    ("submitit", "nodes", POS_INT),
    ("submitit", "mem_gb", number(0, lo_open=True) | NULL),
    ("submitit", "array_parallelism", POS_INT),
    ("submitit", "max_num_timeout", NONNEG_INT),
    ("submitit", "signal_delay_s", NONNEG_INT),
    ("optuna", "direction", DIRECTION | Check(lambda v: isinstance(v, list) and bool(v) and all(DIRECTION.ok(d) for d in v),
                                             "a list of minimize/maximize")),
    ("optuna", "n_trials", POS_INT),
    ("optuna", "n_jobs", POS_INT),
    ("optuna", "max_failure_rate", number(0, 1)),
    ("optuna", "storage", Check(lambda v: isinstance(v, str) and "://" in v, "a database URL such as sqlite:///optuna.db")
     | NULL),
    ("optuna", "sampler.seed", SEED | NULL),
    ("optuna", "params", Check(lambda v: isinstance(v, dict), "a mapping key -> search space") | NULL),
    ("BasicSweeper", "max_batch_size", POS_INT | NULL),
)
SLURM_COMMANDS = ("srun", "sbatch")


def _plugin(config: DictConfig, kind: str) -> tuple[str, dict]:
    node = OmegaConf.select(config, f"hydra.{kind}")
    if node is None:
        return "", {}
    values = OmegaConf.to_container(node, resolve=True)
    return str(values.get("_target_", "")), values


def _get(values: dict, dotted: str) -> tuple[bool, Any]:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_plugins(config: DictConfig) -> None:
    """Launcher and sweeper options, and whether the launcher can start on this machine."""
    for kind in ("launcher", "sweeper"):
        target, values = _plugin(config, kind)
        for fragment, key, rule in PLUGIN_RULES:
            if fragment.lower() not in target.lower():
                continue
            present, value = _get(values, key)
            if present and not rule.ok(value):
                raise ConfigError(f"hydra.{kind}.{key}", f"got {value!r}; allowed {rule.allowed}")
    target, _ = _plugin(config, "launcher")
    if "SlurmLauncher" in target:
        missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
        if missing:
            raise ConfigError("launcher", f"launcher=slurm needs SLURM's {' and '.join(missing)} on PATH, which this "
                                          "machine lacks; submit from a SLURM login node, or try the same code path "
                                          "here with launcher=submitit_local")


def check_paths(config: DictConfig, multirun: bool) -> None:
    """The folders a launch writes to must be named: an empty one would mean the current directory."""
    keys = ["paths.output_root", "hydra.sweep.dir" if multirun else "hydra.run.dir"]
    for key in keys:
        try:
            value = OmegaConf.select(config, key, throw_on_resolution_failure=True)
        except Exception as exc:  # an interpolation that cannot resolve: say which key
            raise ConfigError(key, f"cannot resolve: {str(exc).splitlines()[0]}") from None
        if not NONEMPTY_PATH.ok(value):
            raise ConfigError(key, f"got {value!r}; allowed {NONEMPTY_PATH.allowed} (an empty one writes into the "
                                   "current directory)")


def _refuse(exc: ConfigError) -> None:
    # SystemExit, not an exception: Hydra would print a callback's exception with its traceback
    raise SystemExit(f"symexp: configuration error: {exc}")


class LaunchChecks(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_paths(config, multirun=False)
        except ConfigError as exc:
            _refuse(exc)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_paths(config, multirun=True)
            check_plugins(config)
        except ConfigError as exc:
            _refuse(exc)
