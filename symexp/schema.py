"""Typed top-level config (a dataclass in Hydra's ConfigStore) and validation before any work.

The schema makes a typo'd top-level key fail at compose time; ``validate`` checks values inside the
groups and raises ConfigError naming the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"


class ConfigError(ValueError):
    """A config value is wrong; the message starts with the dotted key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def _root() -> str:
    """The repository root when run from a checkout (outputs anchor there), else the cwd."""
    return str(PROJECT_ROOT if (PROJECT_ROOT / "launch.py").exists() else Path.cwd())


BUDGETS = ("paper", "cpu", "smoke")


def _by_budget(paper: Any, cpu: Any = None, smoke: Any = None, *, _root_: DictConfig) -> Any:
    """``${budget:PAPER,CPU,SMOKE}``: the value for the selected budget (budget=paper|cpu|smoke); a missing
    cpu value falls back to paper, a missing smoke value to cpu."""
    name = OmegaConf.select(_root_, "budget.name", default="paper")
    if name not in BUDGETS:
        raise ConfigError("budget.name", f"unknown budget {name!r}; choose one of {BUDGETS}")
    cpu = paper if cpu is None else cpu
    return {"paper": paper, "cpu": cpu, "smoke": cpu if smoke is None else smoke}[name]


def _every(total: int, times: int) -> int:
    """``${every:TOTAL,TIMES}``: the period that fits TIMES events into TOTAL (at least 1), so a schedule keeps
    its shape when a budget shortens the run (MMNN's StepLR step 400 is ``${every:10000,25}``)."""
    return max(1, int(total) // int(times))


if not OmegaConf.has_resolver("symexp_root"):
    OmegaConf.register_new_resolver("symexp_root", _root)
if not OmegaConf.has_resolver("budget"):
    OmegaConf.register_new_resolver("budget", _by_budget)
if not OmegaConf.has_resolver("every"):
    OmegaConf.register_new_resolver("every", _every)


@dataclass
class EnsembleConf:
    size: int = 1  # K independent members trained as stacked parameters; member k uses seed + k


@dataclass
class CheckpointConf:
    """When <job>/checkpoints/last.ckpt is rewritten (at Lightning epoch ends; any rule that fires saves)."""

    every_n_epochs: Any = None  # every N Lightning epochs
    every_minutes: Any = 5.0  # whenever this much wall time has passed since the last save
    every_fraction: Any = 0.1  # every this fraction of the run's epochs


@dataclass
class PathsConf:
    root: str = "${symexp_root:}"
    data_dir: str = "${paths.root}/data"
    output_root: str = "${paths.root}/outputs"


@dataclass
class SymexpConfig:
    name: str = "run"
    seed: int = 0
    ensemble: EnsembleConf = field(default_factory=EnsembleConf)
    model: Any = MISSING
    data: Any = MISSING
    task: Any = MISSING
    metric: Any = field(default_factory=dict)
    syre: Any = field(default_factory=dict)
    device: Any = field(default_factory=dict)
    logger: Any = field(default_factory=dict)
    trainer: Any = field(default_factory=dict)
    paths: PathsConf = field(default_factory=PathsConf)
    budget: Any = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    progress: str = "auto"  # auto (rich in a terminal, plain lines otherwise) | rich | plain | none
    resume: str = "auto"  # auto (continue a matching checkpoint, skip a finished job) | never | force
    save_checkpoints: bool = True
    checkpoint: CheckpointConf = field(default_factory=CheckpointConf)
    deterministic: bool = False
    strict_exit: bool = True  # exit non-zero when a job (or any job of a sweep) failed or diverged


ConfigStore.instance().store(name="symexp_schema", node=SymexpConfig)


def _positive_int(cfg: DictConfig, key: str, minimum: int = 1) -> None:
    value = OmegaConf.select(cfg, key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
        raise ConfigError(key, f"must be an integer >= {minimum}, got {value!r}")


def _nonnegative(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    if value is not None and (not isinstance(value, (int, float)) or value < 0):
        raise ConfigError(key, f"must be a non-negative number, got {value!r}")


def validate(cfg: DictConfig) -> None:
    """Fail before training on values no run could use; each message names its key."""
    _positive_int(cfg, "ensemble.size")
    for key in ("model", "data", "task"):
        node = OmegaConf.select(cfg, key)
        if node is None or "_target_" not in node:
            raise ConfigError(key, "must select an option with a _target_ (e.g. model=rflr)")
    for key in ("data.n_train", "data.n_val", "model.width", "model.rank", "task.epochs", "task.val_every"):
        _positive_int(cfg, key)
    _positive_int(cfg, "model.depth", minimum=0)
    rank, width = OmegaConf.select(cfg, "model.rank"), OmegaConf.select(cfg, "model.width")
    if isinstance(rank, int) and isinstance(width, int) and rank > width:
        raise ConfigError("model.rank", f"rank {rank} exceeds model.width {width}")
    in_dim, dim = OmegaConf.select(cfg, "model.in_dim"), OmegaConf.select(cfg, "data.dim")
    if isinstance(in_dim, int) and isinstance(dim, int) and in_dim != dim:
        raise ConfigError("model.in_dim", f"model input dimension {in_dim} != data.dim {dim}")
    for name, node in (OmegaConf.select(cfg, "metric") or {}).items():
        if node is None:
            continue
        for k, v in node.items():
            if k.endswith("threshold") or k.startswith("tau") or k.endswith("_max") or k.endswith("_min"):
                _nonnegative(cfg, f"metric.{name}.{k}")
            del v
    logger = OmegaConf.select(cfg, "logger.backend")
    if logger not in (None, "wandb", "csv", "none"):
        raise ConfigError("logger.backend", f"unknown logger {logger!r}; choose wandb, csv or none")
    if OmegaConf.select(cfg, "logger.mode") not in (None, "offline", "online", "disabled"):
        raise ConfigError("logger.mode", "must be offline, online or disabled")
    if cfg.progress not in ("auto", "rich", "plain", "none"):
        raise ConfigError("progress", f"unknown progress style {cfg.progress!r}; choose auto, rich, plain, none")
