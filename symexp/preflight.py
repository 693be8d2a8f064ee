"""Build the small objects a config names before any data or model exists, so that their own errors
(torch's "Invalid beta parameter", a scheduler's missing argument, Lightning's refusal of a Trainer
argument) surface as one line naming the key instead of a traceback from inside ``trainer.fit``.

The optimizer and scheduler are built on one dummy parameter (the same ``_partial_`` factories the task
builds on the model's parameters later); Trainer errors are caught where the Trainer is built.
"""

from __future__ import annotations

import re
import warnings

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from symexp.schema import ConfigError

TRAINER_GROUPS = ("trainer", "device")


def _root(exc: BaseException) -> BaseException:
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _first_line(exc: BaseException) -> str:
    raw = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() is a repr
    text = str(raw).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _named_key(message: str, prefix: str, keys) -> str:
    """``prefix.key`` for the first of ``keys`` the message mentions (torch and Lightning name their
    arguments), else ``prefix``."""
    for key in sorted(keys, key=len, reverse=True):
        if re.search(rf"(?<![A-Za-z_]){re.escape(str(key))}(?![A-Za-z_])", message):
            return f"{prefix}.{key}"
    return prefix


def _build(node: DictConfig, key: str, **kwargs):
    try:
        with warnings.catch_warnings():
            # the dummy optimizer is never stepped; a scheduler built on it may warn about step order
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*", category=UserWarning)
            factory = instantiate(node)
            return factory(**kwargs) if callable(factory) and not isinstance(factory, torch.optim.Optimizer) else factory
    except ConfigError:
        raise
    except Exception as exc:
        root = _root(exc)
        message = _first_line(root)
        raise ConfigError(_named_key(message, key, [k for k in node if not str(k).startswith("_")]),
                          f"{type(root).__name__}: {message}") from None


def check_optimizer(cfg: DictConfig) -> None:
    """Build task.optimizer (and task.scheduler on it) for one dummy parameter."""
    opt_cfg = OmegaConf.select(cfg, "task.optimizer")
    if not isinstance(opt_cfg, DictConfig) or "_target_" not in opt_cfg:
        return
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = _build(opt_cfg, "task.optimizer", params=[param])
    sched_cfg = OmegaConf.select(cfg, "task.scheduler")
    if isinstance(sched_cfg, DictConfig) and "_target_" in sched_cfg and isinstance(optimizer, torch.optim.Optimizer):
        _build(sched_cfg, "task.scheduler", optimizer=optimizer)


def trainer_error(exc: BaseException, cfg: DictConfig) -> ConfigError:
    """The one-line error for a Trainer that refused its arguments, naming the key the message names."""
    message = _first_line(exc)
    for group in TRAINER_GROUPS:
        node = OmegaConf.select(cfg, group) or {}
        key = _named_key(message, group, list(node))
        if key != group:
            return ConfigError(key, f"lightning.Trainer refused it: {message}")
    return ConfigError("trainer", f"lightning.Trainer refused its arguments: {message}")
