"""Value checks that run before any data or model is built: one table of knob -> allowed values.

Every rule names a dotted key pattern (``*`` matches one path segment) and what the key may hold. A key a
config does not have is skipped, so one table serves every task, model, data and syre group. A failing
value raises ``ConfigError(key, "got X; allowed Y")``; ``run()`` prints that as one line. Checks that need
the machine (a CUDA device for ``device=gpu``) live in :func:`check_environment`.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from symexp.schema import ConfigError


@dataclass(frozen=True)
class Check:
    """A predicate on a value and the words that say what it accepts."""

    ok: Callable[[Any], bool]
    allowed: str

    def __or__(self, other: Check) -> Check:
        return Check(lambda v: self.ok(v) or other.ok(v), f"{self.allowed}, or {other.allowed}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    """A finite number in [lo, hi] (either end open, either end absent)."""

    def ok(v: Any) -> bool:
        if not _is_number(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_open else v > hi))

    if lo is not None and hi is not None:
        text = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        text = f"a number {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"a number {'<' if hi_open else '<='} {hi:g}"
    return Check(ok, text)


def integer(minimum: int = 1) -> Check:
    return Check(lambda v: _is_int(v) and v >= minimum, f"an integer >= {minimum}")


def choice(*options: Any) -> Check:
    return Check(lambda v: v in options and not isinstance(v, bool), "one of " + ", ".join(map(str, options)))


def list_of(item: Check, min_len: int = 0) -> Check:
    def ok(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and len(v) >= min_len and all(item.ok(x) for x in v)

    first, _, rest = item.allowed.removeprefix("a ").removeprefix("an ").partition(" ")
    return Check(ok, f"a list of {first}s {rest}".rstrip() + (f" (at least {min_len})" if min_len else ""))


NULL = Check(lambda v: v is None, "null")
BOOL = Check(lambda v: isinstance(v, bool), "true or false")
STRING = Check(lambda v: isinstance(v, str), "a string")
POSITIVE = number(0, lo_open=True)
NONNEG = number(0)
PROB = number(0, 1)
FRACTION_OPEN = number(0, 1, hi_open=True)  # dropout, momentum, Adam betas: 1 would never move
POS_INT = integer(1)
NONNEG_INT = integer(0)
SEED = Check(lambda v: _is_int(v) and 0 <= v <= 2**32 - 1, "an integer in [0, 2**32 - 1] (numpy's seed range)")
NONEMPTY = Check(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")

# (key pattern, check). Patterns are dotted; ``*`` is one segment. Order does not matter: every match applies.
RULES: tuple[tuple[str, Check], ...] = (
    # ---- top level
    ("seed", SEED),
    ("name", NONEMPTY),
    ("paths.root", NONEMPTY),
    ("paths.data_dir", NONEMPTY),
    ("paths.output_root", NONEMPTY),
    ("ensemble.size", POS_INT),
    ("progress", choice("auto", "rich", "plain", "none")),
    ("save_checkpoints", BOOL),
    ("resume", choice("auto", "never", "force")),
    ("checkpoint.every_n_epochs", POS_INT | NULL),
    ("checkpoint.every_minutes", POSITIVE | NULL),
    ("checkpoint.every_fraction", number(0, 1, lo_open=True) | NULL),
    ("deterministic", BOOL),
    ("tags", list_of(STRING)),
    ("budget.name", choice("paper", "cpu", "smoke")),
    # ---- device (Lightning Trainer arguments)
    ("device.accelerator", choice("auto", "cpu", "gpu", "cuda", "mps", "tpu")),
    ("device.devices", Check(lambda v: _is_int(v) and (v == -1 or v >= 1), "-1 (all) or an integer >= 1")
     | list_of(NONNEG_INT, 1) | choice("auto")),
    ("device.precision", choice("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true",
                                "transformer-engine", "64", "32", "16", "bf16", 64, 32, 16)),
    ("device.num_nodes", POS_INT),
    ("device.strategy", STRING),
    # ---- trainer: extra lightning.Trainer arguments
    ("trainer.max_epochs", Check(lambda v: _is_int(v) and v >= -1, "-1 (no limit) or an integer >= 0") | NULL),
    ("trainer.min_epochs", NONNEG_INT | NULL),
    ("trainer.max_steps", Check(lambda v: _is_int(v) and v >= -1, "-1 (no limit) or an integer >= 0")),
    ("trainer.min_steps", NONNEG_INT | NULL),
    ("trainer.gradient_clip_val", NONNEG | NULL),
    ("trainer.gradient_clip_algorithm", choice("norm", "value") | NULL),
    ("trainer.accumulate_grad_batches", POS_INT),
    ("trainer.check_val_every_n_epoch", POS_INT | NULL),
    ("trainer.log_every_n_steps", POS_INT | NULL),
    ("trainer.num_sanity_val_steps", Check(lambda v: _is_int(v) and v >= -1, "-1 (all) or an integer >= 0") | NULL),
    ("trainer.limit_train_batches", number(0, 1) | NONNEG_INT | NULL),
    ("trainer.limit_val_batches", number(0, 1) | NONNEG_INT | NULL),
    ("trainer.limit_test_batches", number(0, 1) | NONNEG_INT | NULL),
    ("trainer.val_check_interval", POSITIVE | NULL),
    ("trainer.overfit_batches", number(0, 1) | NONNEG_INT),
    ("trainer.fast_dev_run", BOOL | NONNEG_INT),
    ("trainer.precision", choice("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true",
                                 "transformer-engine", "64", "32", "16", "bf16", 64, 32, 16) | NULL),
    ("trainer.max_time", Check(lambda v: isinstance(v, dict) or (isinstance(v, str) and bool(re.fullmatch(r"\d+:\d\d:\d\d:\d\d", v))),
                               "DD:HH:MM:SS or a mapping such as {hours: 12}") | NULL),
    ("trainer.detect_anomaly", BOOL),
    ("trainer.benchmark", BOOL | NULL),
    ("trainer.deterministic", BOOL | choice("warn") | NULL),
    ("trainer.enable_progress_bar", BOOL | NULL),
    ("trainer.enable_model_summary", BOOL | NULL),
    ("trainer.enable_checkpointing", BOOL | NULL),
    ("trainer.sync_batchnorm", BOOL),
    ("trainer.use_distributed_sampler", BOOL),
    ("trainer.reload_dataloaders_every_n_epochs", NONNEG_INT),
    # ---- logger
    ("logger.backend", choice("wandb", "csv", "tensorboard", "none")),
    ("logger.mode", choice("auto", "offline", "online", "disabled") | NULL),
    ("logger.init_timeout", POSITIVE),
    ("logger.log_artifacts", BOOL),
    ("logger.tags", list_of(STRING)),
    # ---- every optimizer and scheduler (torch.optim)
    ("task.optimizer.lr", POSITIVE),
    ("task.optimizer.weight_decay", NONNEG),
    ("task.optimizer.momentum", FRACTION_OPEN),
    ("task.optimizer.dampening", PROB),
    ("task.optimizer.eps", POSITIVE),
    ("task.optimizer.betas", Check(lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(FRACTION_OPEN.ok(b) for b in v),
                                   "two numbers in [0, 1), e.g. [0.9, 0.999]")),
    ("task.optimizer.nesterov", BOOL),
    ("task.scheduler.gamma", POSITIVE),
    ("task.scheduler.step_size", POS_INT),
    ("task.scheduler.T_max", POS_INT),
    ("task.scheduler.eta_min", NONNEG),
    ("task.scheduler.milestones", list_of(POS_INT)),
    # ---- tasks: budgets and cadences
    ("task.epochs", POS_INT),
    ("task.steps", POS_INT),
    ("task.val_every", POS_INT),
    ("task.steps_per_call", POS_INT | NULL),
    ("task.max_steps", Check(lambda v: _is_int(v) and (v == -1 or v >= 1), "-1 (no limit) or an integer >= 1")),
    ("task.engine", choice("auto", "autograd", "fused", "graph", "graph_compiled")),
    ("task.divergence_loss", POSITIVE),
    ("task.log_every", POS_INT),
    ("task.batch_size", POS_INT | NULL),
    ("task.num_threads", POS_INT | NULL),
    ("task.history_every", POS_INT),
    ("task.track_every", POS_INT),
    ("task.probe_size", POS_INT),
    ("task.train_eval_size", POS_INT | NULL),
    ("task.rank_tol", NONNEG),
    ("task.ntk_samples", NONNEG_INT),
    ("task.ntk_tol", NONNEG),
    ("task.epochs_per_task", POS_INT),
    ("task.points", integer(2)),
    ("task.second_seed_offset", NONNEG_INT),
    # classification-style tasks
    ("task.temperature", POSITIVE),
    ("task.probe_train", POS_INT),
    ("task.probe_steps", POS_INT),
    ("task.lowrank_tol", NONNEG),
    ("task.beta", NONNEG),
    ("task.prior_var", POSITIVE),
    ("task.encoder_weight_decay", NONNEG),
    ("task.decoder_weight_decay", NONNEG),
    # PPO
    ("task.total_steps", POS_INT),
    ("task.rollout_steps", POS_INT),
    ("task.minibatches", POS_INT),
    ("task.gamma", PROB),
    ("task.gae_lambda", PROB),
    ("task.clip", POSITIVE),
    ("task.value_coef", NONNEG),
    ("task.entropy_coef", NONNEG),
    ("task.max_grad_norm", POSITIVE | NULL),
    ("task.normalize_advantages", choice("batch", "minibatch", "none") | BOOL),
    ("task.bootstrap_truncated", BOOL),
    ("task.reward_scale", POSITIVE),
    ("task.iterations_per_epoch", POS_INT),
    ("task.rank_states", POS_INT),
    ("task.metrics_every", NONNEG_INT),
    ("task.final_window", number(0, 1, lo_open=True)),
    # generator learning
    ("task.lr_decay", number(0, 1, lo_open=True)),
    ("task.lr_decay_every", POS_INT),
    ("task.objective", choice("infinitesimal", "exponentiated")),
    ("task.assoc_form", choice("bracket", "paper")),
    ("task.orth_on", choice("h", "field")),
    ("task.t_max", POSITIVE),
    ("task.flow_arclength", POSITIVE),
    ("task.flow_steps", POS_INT),
    ("task.n_align", POS_INT),
    ("task.lift", BOOL),
    ("task.sparse_warmup", NONNEG_INT),
    ("task.normalize_invariance", BOOL),
    # mirror experiments
    ("task.dim", POS_INT),
    ("task.n", POS_INT),
    ("task.tasks", POS_INT),
    ("task.steps_per_task", POS_INT),
    ("task.lr", POSITIVE),
    ("task.lrs", list_of(POSITIVE, 1)),
    ("task.weight_decay", NONNEG),
    ("task.weight_decays", list_of(NONNEG, 1)),
    ("task.support", number(0, 1, lo_open=True)),
    ("task.offset_std", NONNEG),
    ("task.noise_std", NONNEG),
    ("task.noise", NONNEG),
    ("task.noises", list_of(NONNEG, 1)),
    ("task.tol", NONNEG),
    # ---- data: regression targets
    ("data.dim", POS_INT),
    ("data.n_train", POS_INT | NULL),
    ("data.n_val", POS_INT),
    ("data.n_test", POS_INT | NULL),
    ("data.n_eval", POS_INT),
    ("data.sampling", choice("uniform", "positive_bias")),
    ("data.flip_prob", PROB),
    ("data.sample_seed", SEED | NULL),
    ("data.noise_std", NONNEG),
    ("data.grid_points", integer(2)),
    ("data.transforms", list_of(STRING, 1)),
    # vision
    ("data.source", choice("mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "synthetic")),
    ("data.channels", POS_INT),
    ("data.image_size", POS_INT),
    ("data.num_classes", integer(2)),
    ("data.batch_size", POS_INT),
    ("data.eval_batch_size", POS_INT),
    ("data.alpha", POSITIVE),
    ("data.normalize", BOOL),
    ("data.augment", BOOL),
    ("data.download", BOOL),
    ("data.permutations", NONNEG_INT),
    ("data.permutation_seed", SEED),
    ("data.signal", NONNEG),
    ("data.downsample", POS_INT),
    # synthetic regression / teacher-student
    ("data.noise", NONNEG),
    ("data.teacher_scale", NONNEG),
    ("data.sparsity", PROB),
    ("data.hidden", POS_INT),
    ("data.classes", integer(2)),
    ("data.label_noise", PROB),
    ("data.input_noise", NONNEG),
    ("data.theta_std", POSITIVE),
    ("data.ticks", POS_INT),
    # environments
    ("data.low", POSITIVE),
    ("data.high", POSITIVE),
    ("data.change_every", POS_INT),
    ("data.obs_dim", POS_INT),
    ("data.act_dim", POS_INT),
    ("data.num_envs", POS_INT),
    ("data.max_changes", POS_INT),
    # ---- models
    ("model.in_dim", POS_INT),
    ("model.width", POS_INT),
    ("model.rank", POS_INT),
    ("model.depth", NONNEG_INT),
    ("model.mixer_bias", BOOL),
    ("model.first_scale", POSITIVE),
    ("model.hidden", POS_INT | list_of(POS_INT, 1)),
    ("model.channels", list_of(POS_INT, 1)),
    ("model.padding", NONNEG_INT),
    ("model.dropout", FRACTION_OPEN),
    ("model.emb_dropout", FRACTION_OPEN),
    ("model.blocks", list_of(POS_INT, 1)),
    ("model.norm", choice("none", "layernorm")),
    ("model.patch", POS_INT),
    ("model.heads", POS_INT),
    ("model.head_dim", POS_INT),
    ("model.mlp_dim", POS_INT),
    ("model.dim", POS_INT),
    ("model.latent", POS_INT),
    ("model.head_hidden", POS_INT),
    ("model.out_dim", POS_INT),
    ("model.identical_fraction", PROB | NULL),
    ("model.identical", NONNEG_INT | NULL),
    ("model.init_std", NONNEG),
    ("model.dead_tol", NONNEG),
    ("model.dims", list_of(POS_INT, 1)),
    ("model.structure", choice("unstructured", "structured")),
    ("model.b_scale", POSITIVE),
    ("model.c_th", NONNEG | NULL),
    ("model.k", POS_INT),
    ("model.layers", integer(2)),
    ("model.kind", choice("mlp", "linear", "deformed", "bilinear")),
    ("model.partials", choice("pre", "post")),
    ("model.partial_layers", list_of(integer(1), 1) | NULL),
    ("model.hidden_scale", POSITIVE),
    ("model.distinct_rtol", POSITIVE),
    ("task.exclude", list_of(choice("unseen")) | NULL),
    ("task.exclude_weight", NONNEG),
    ("model.residual", BOOL),
    ("model.copies", POS_INT),
    # ---- syre
    ("syre.sigma0", NONNEG),
    ("syre.sigma_D", number(0, 1, hi_open=True)),
    ("syre.mode", choice("absolute", "fan_in_relative", "global")),
    ("syre.form", choice("anchored", "offset")),
    ("syre.weight_decay", NONNEG | NULL),
    ("syre.shift_init", BOOL),
    ("syre.seed", SEED | NULL),
    ("syre.module_types", list_of(STRING) | NULL),
    ("syre.include", list_of(STRING)),
    ("syre.exclude", list_of(STRING)),
    ("syre.include_norm", BOOL),
    ("syre.include_bias", BOOL),
    ("syre.fraction", PROB | list_of(PROB, 1) | NULL),
    ("syre.count", NONNEG_INT | list_of(NONNEG_INT, 1) | NULL),
    ("syre.kappa", NONNEG | list_of(NONNEG, 1)),
    ("syre.kappa_is", choice("std", "variance")),
    ("syre.anchor", BOOL),
    ("syre.scale", POSITIVE),
    ("syre.normalize", BOOL),
    # ---- metrics
    ("metric.*.every_n_epochs", NONNEG_INT),
    ("metric.*.tolerance", NONNEG),
    ("metric.*.tol", NONNEG),
    ("metric.*.tau", NONNEG),
    ("metric.*.eps", NONNEG),
    ("metric.*.n_samples", POS_INT),
    ("metric.*.threshold", number(0, 1, lo_open=True)),
    ("metric.*.relative", BOOL),
    ("metric.*.transforms", list_of(STRING, 1) | NULL),
    ("metric.*.layers", list_of(STRING) | Check(lambda v: isinstance(v, dict), "a mapping alias -> module")),
    ("metric.*.c_th", NONNEG | NULL),
    ("metric.regime.r2_min", number(hi=1)),
    ("metric.regime.partial_low", NONNEG),
    ("metric.regime.partial_high", NONNEG),
)


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every value of a resolved config; lists count as values."""
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                yield key, v
                yield from _leaves(v, key)
            else:
                yield key, v


def _matches(pattern: str, key: str) -> bool:
    p, k = pattern.split("."), key.split(".")
    return len(p) == len(k) and all(fnmatch.fnmatchcase(ks, ps) for ps, ks in zip(p, k))


def resolve_config(cfg: DictConfig) -> dict:
    """The config as plain values; an interpolation that cannot resolve is reported by its key."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except ConfigError:
        raise
    except OmegaConfBaseException as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ConfigError) else None
        if cause is not None:
            raise cause from None
        first = str(getattr(exc, "msg", exc)).splitlines()[0]
        raise ConfigError(getattr(exc, "full_key", None) or "config",
                          f"cannot resolve: {first} (do the selected groups fit together?)") from None


def check_values(cfg: DictConfig) -> None:
    """Apply every rule of RULES to the keys the config has."""
    for key, value in _leaves(resolve_config(cfg)):
        for pattern, rule in RULES:
            if _matches(pattern, key) and not rule.ok(value):
                raise ConfigError(key, f"got {value!r}; allowed {rule.allowed}")


def check_environment(cfg: DictConfig) -> None:
    """What the machine must offer for this config: a CUDA device for accelerator=gpu/cuda."""
    accelerator = OmegaConf.select(cfg, "device.accelerator")
    if accelerator in ("gpu", "cuda"):
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have == 0:
            raise ConfigError(
                "device.accelerator", f"got {accelerator!r}; allowed cpu or auto here: no CUDA device is visible "
                "(torch.cuda.is_available() is False); use device=cpu or device=auto")
        devices = OmegaConf.select(cfg, "device.devices")
        if _is_int(devices) and devices > have:
            raise ConfigError("device.devices", f"got {devices}; allowed -1 or 1..{have} ({have} CUDA devices visible)")
    elif accelerator == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("device.accelerator", "got 'mps'; allowed cpu or auto here: MPS is not available")
