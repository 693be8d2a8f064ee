"""Mid-run checkpoints that let a killed job continue bit for bit.

Why not Lightning's ModelCheckpoint: it skips a save whenever ``trainer.global_step`` has not moved
since the last one, and symexp's batch-1 engines take thousands of optimizer steps inside one Lightning
step (they drive the raw optimizer), so it saved only at the end of training. This callback counts
epochs and wall time instead. It subclasses Lightning's ``Checkpoint`` so the trainer calls it after the
task's own ``on_train_epoch_end`` (the state it saves is the finished epoch's), and it saves:

- the parameters, optimizer, scheduler and loop state (Lightning's own checkpoint contents),
- whatever the task adds in ``on_save_checkpoint`` (syre's theta0, PPO's simulators, best parameters),
- the global RNG states (python, numpy, torch, CUDA), which Lightning does not save,
- the resolved config and its fingerprint, so a checkpoint says which run it belongs to.

Saves happen at Lightning epoch boundaries only: resuming from the middle of an epoch is not exact in
Lightning. Every symexp task keeps its Lightning epochs short for that reason.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint

from symexp.resume import LAST
from symexp.signals import stop_at_safe_point, take_over_from_lightning


def pack(obj) -> torch.Tensor:
    """Python objects as pickled bytes in a uint8 tensor, so the checkpoint still loads with weights_only."""
    return torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8)


def unpack(packed: torch.Tensor):
    return pickle.loads(packed.numpy().tobytes())


def rng_states() -> torch.Tensor:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return pack(states)


def set_rng_states(packed: torch.Tensor) -> None:
    states = unpack(packed)
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class PeriodicCheckpoint(Checkpoint):
    """Writes ``dirpath/last.ckpt`` atomically every ``every_n_epochs`` epochs, whenever ``every_minutes``
    of wall time have passed since the last save, every ``every_fraction`` of the run, and at the end."""

    def __init__(self, dirpath: Path, every_n_epochs: int | None = None, every_minutes: float | None = 5.0,
                 every_fraction: float | None = 0.1, config: dict | None = None, fingerprint: str | None = None,
                 ) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_epochs, self.every_minutes, self.every_fraction = every_n_epochs, every_minutes, every_fraction
        self.config, self.fingerprint = config, fingerprint
        self._last_save = time.monotonic()
        self._period: int | None = None
        self._rng: torch.Tensor | None = None
        self.saves = 0

    @property
    def path(self) -> Path:
        return self.dirpath / LAST

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        take_over_from_lightning(trainer)
        self._last_save = time.monotonic()
        self._period = None
        if self.every_fraction:
            if trainer.max_epochs is not None and trainer.max_epochs > 0:
                self._period = max(1, math.ceil(self.every_fraction * trainer.max_epochs))
            elif trainer.max_steps and trainer.max_steps > 0 and trainer.num_training_batches not in (0, math.inf):
                epochs = trainer.max_steps / max(1, int(trainer.num_training_batches))
                self._period = max(1, math.ceil(self.every_fraction * epochs))

    def _due(self, epoch: int) -> bool:
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            return True
        if self._period and epoch % self._period == 0:
            return True
        return bool(self.every_minutes) and time.monotonic() - self._last_save >= 60.0 * self.every_minutes

    def _restore_rng(self) -> None:
        # The RNG goes back at the first moment of the resumed epoch (its start hook, or its first batch
        # where Lightning restarts inside the epoch): setup hooks that draw before it cannot shift the stream.
        if self._rng is not None:
            set_rng_states(self._rng)
            self._rng = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_rng()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx) -> None:
        self._restore_rng()

    def _safe_point(self, trainer: L.Trainer) -> None:
        """Save when due; after a stop signal (symexp.signals), save and stop the fit."""
        due = self._due(trainer.current_epoch + 1)
        if due:
            self.save(trainer)
        stop_at_safe_point(trainer, save=None if due else lambda: self.save(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.max_steps == -1:
            self._safe_point(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        # Step-budgeted runs (max_steps set) restart exactly only from their epoch's last batch: Lightning
        # restarts an epoch-end checkpoint of theirs by running that epoch's loop once more.
        if trainer.max_steps != -1 and batch_idx + 1 == trainer.num_training_batches:
            self._safe_point(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Temp file + rename on rank zero, so a kill mid-write never leaves a torn last.ckpt."""
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.dirpath / f".{LAST}.tmp"
        try:
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())  # the data reaches the disk before the rename does
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.path)
        except BaseException:  # a full disk or a kill: no partial temp file left, the previous last.ckpt stays
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)
            raise
        trainer.strategy.barrier("symexp.checkpoint")
        self._last_save = time.monotonic()
        self.saves += 1

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["symexp"] = {"config": self.config, "fingerprint": self.fingerprint, "rng": rng_states()}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._rng = (checkpoint.get("symexp") or {}).get("rng")


def architecture_mismatch(state_dict: dict, module: torch.nn.Module) -> str | None:
    """The first difference between a checkpoint's parameters and ``module``'s (a missing, unexpected or
    differently shaped tensor), in words; None when they fit. Lets a wrong checkpoint fail in one line
    instead of in load_state_dict's wall of key names."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing:
        return f"the model has {missing[0]!r} ({len(missing)} tensors in all) that the checkpoint lacks"
    if unexpected:
        return f"the checkpoint has {unexpected[0]!r} ({len(unexpected)} tensors in all) that the model lacks"
    for key, value in own.items():
        theirs = state_dict[key]
        if hasattr(theirs, "shape") and tuple(theirs.shape) != tuple(value.shape):
            return f"{key!r} is {tuple(theirs.shape)} in the checkpoint but {tuple(value.shape)} in the model"
    return None


def start_checkpoint(path: str | Path, task: torch.nn.Module) -> Path:
    """``ckpt_path``: a checkpoint to start training from, checked to exist, load and fit ``task``."""
    from symexp.schema import ConfigError

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError("ckpt_path", f"no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or not a torch file: say which file, not torch's reader internals
        raise ConfigError("ckpt_path", f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ConfigError("ckpt_path", f"{path} is not a Lightning checkpoint (no 'state_dict')")
    mismatch = architecture_mismatch(state["state_dict"], task)
    if mismatch:
        raise ConfigError("ckpt_path", f"{path} does not fit this model: {mismatch}")
    return path


class SafeStop(L.Callback):
    """Runs without checkpoints (save_checkpoints=false) still stop on a signal at the same safe points,
    with nothing saved."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        take_over_from_lightning(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.max_steps == -1:
            stop_at_safe_point(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.max_steps != -1 and batch_idx + 1 == trainer.num_training_batches:
            stop_at_safe_point(trainer)
