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


class DataError(ConfigError):
    """The data a config asks for cannot be had (missing files, no network); names the key to change."""


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
    callbacks: Any = field(default_factory=dict)  # extra Lightning callbacks by name (conf/callbacks), each a _target_
    debug: Any = None  # the debug preset's own marker (conf/debug); null in real runs
    ckpt_path: Any = None  # start training from this checkpoint (a fresh job folder; its own last.ckpt wins)
    paths: PathsConf = field(default_factory=PathsConf)
    budget: Any = field(default_factory=dict)
    audit: Any = field(default_factory=dict)  # +audit=on: symexp.audit report at the end of the run
    tags: list[str] = field(default_factory=list)
    progress: str = "auto"  # auto (rich in a terminal, plain lines otherwise) | rich | plain | none
    resume: str = "auto"  # auto (continue a matching checkpoint, skip a finished job) | never | force
    save_checkpoints: bool = True
    checkpoint: CheckpointConf = field(default_factory=CheckpointConf)
    deterministic: bool = False
    strict_exit: bool = True  # exit non-zero when a job (or any job of a sweep) failed or diverged


ConfigStore.instance().store(name="symexp_schema", node=SymexpConfig)


def validate(cfg: DictConfig) -> None:
    """Fail before any data or model is built on values no run could use; each message names its key.

    The value table lives in symexp.validation (one rule per knob); the checks here relate two keys."""
    from symexp.config_keys import check_keys
    from symexp.preflight import check_optimizer
    from symexp.validation import check_environment, check_values, resolve_config

    for key in ("model", "data", "task"):
        node = OmegaConf.select(cfg, key)
        if node is None or "_target_" not in node:
            raise ConfigError(key, "must select an option with a _target_ (e.g. model=rflr)")
    check_values(cfg)
    check_keys(resolve_config(cfg))
    check_optimizer(cfg)
    seed, size = OmegaConf.select(cfg, "seed"), OmegaConf.select(cfg, "ensemble.size")
    if isinstance(seed, int) and isinstance(size, int) and seed + size - 1 > 2**32 - 1:
        raise ConfigError("seed", f"got {seed}; allowed at most 2**32 - ensemble.size = {2**32 - size} "
                                  "(member k uses seed + k, within numpy's seed range)")
    rank, width = OmegaConf.select(cfg, "model.rank"), OmegaConf.select(cfg, "model.width")
    if isinstance(rank, int) and isinstance(width, int) and rank > width:
        raise ConfigError("model.rank", f"got {rank}; allowed at most model.width={width}")
    in_dim, dim = OmegaConf.select(cfg, "model.in_dim"), OmegaConf.select(cfg, "data.dim")
    if isinstance(in_dim, int) and isinstance(dim, int) and in_dim != dim:
        raise ConfigError("model.in_dim", f"got {in_dim}; allowed data.dim={dim} (the model reads the data's inputs)")
    low, high = OmegaConf.select(cfg, "data.low"), OmegaConf.select(cfg, "data.high")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        raise ConfigError("data.low", f"got {low}; allowed at most data.high={high}")
    partial_low = OmegaConf.select(cfg, "metric.regime.partial_low")
    partial_high = OmegaConf.select(cfg, "metric.regime.partial_high")
    if isinstance(partial_low, (int, float)) and isinstance(partial_high, (int, float)) and partial_low > partial_high:
        raise ConfigError("metric.regime.partial_low", f"got {partial_low}; allowed at most metric.regime.partial_high={partial_high}")
    check_environment(cfg)
