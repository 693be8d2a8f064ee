"""The contract between symexp.run and every task.

A task is a LightningModule over an (optionally ensemble-native) model. Besides training it answers:
per-member status, the metrics it computes itself at the end, its figures, and the Trainer settings its
budget implies. Symmetry metrics from the metric group are applied by symexp.symmetry.callback.

Symmetry removal (the syre group) plugs in through three hooks on the syre object: ``configure(model,
optimizer)`` once the optimizer exists, ``before_step(model, optimizer)`` after the gradients are in
and ``after_step(model, optimizer)`` after every optimizer step. Under automatic optimisation this base
class calls them, before_step *after* Lightning's gradient clipping (``trainer.gradient_clip_val``), so
the clip acts on the loss gradient alone, as in l(theta + theta0) + gamma |theta|^2 where the decay is
the optimizer's; manual-optimisation tasks call ``self.syre_before_step`` / ``self.syre_after_step``
after their own clipping.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch


def _portable(value):
    """torch.Generator does not pickle: carry its state instead (also inside lists)."""
    if isinstance(value, torch.Generator):
        return {"__generator_state__": value.get_state()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return value


def _restored(current, value):
    if isinstance(value, dict) and "__generator_state__" in value and isinstance(current, torch.Generator):
        current.set_state(value["__generator_state__"])
        return current
    if isinstance(value, list) and isinstance(current, list) and len(current) == len(value):
        return [_restored(c, v) for c, v in zip(current, value)]
    return value


class SymexpTask(L.LightningModule):
    """Base class; subclasses implement training and may override the hooks below."""

    # Python-side attributes (curves, histories) a checkpoint must carry for an exact resume; tensors that
    # matter belong in buffers, which the state_dict carries anyway.
    resumable: tuple[str, ...] = ()

    def __init__(self, model: torch.nn.Module, datamodule=None, seeds: Sequence[int] = (0,), syre=None):
        super().__init__()
        self.model = model
        self.datamodule = datamodule
        self.seeds = list(seeds)
        self.syre = syre

    @property
    def members(self) -> int:
        return len(self.seeds)

    # ------------------------------------------------------------------ syre wiring
    def attach_syre(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Call from configure_optimizers with the optimizer just built."""
        if self.syre is not None:
            self.syre.configure(self.model, optimizer)
        return optimizer

    def syre_before_step(self, optimizer) -> None:
        if self.syre is not None:
            self.syre.before_step(self.model, getattr(optimizer, "optimizer", optimizer))

    def syre_after_step(self, optimizer) -> None:
        if self.syre is not None:
            self.syre.after_step(self.model, getattr(optimizer, "optimizer", optimizer))

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning calls this after ``on_before_optimizer_step`` (automatic optimisation only): clip the
        loss gradient first, then add syre's anchor term so that the clip never scales it."""
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        self.syre_before_step(optimizer)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.syre_after_step(optimizer)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        from symexp.checkpointing import pack

        if self.syre is not None and hasattr(self.syre, "state_dict"):
            checkpoint["syre"] = self.syre.state_dict()
        if self.resumable:
            checkpoint["task_state"] = pack({k: _portable(getattr(self, k)) for k in self.resumable})

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from symexp.checkpointing import unpack

        if self.syre is not None and "syre" in checkpoint and hasattr(self.syre, "load_state_dict"):
            self.syre.load_state_dict(checkpoint["syre"])
        if "task_state" in checkpoint:
            for key, value in unpack(checkpoint["task_state"]).items():
                setattr(self, key, _restored(getattr(self, key, None), value))

    # ------------------------------------------------------------------ run.py's questions
    def trainer_defaults(self) -> dict:
        """Trainer kwargs implied by the task's own budget (cfg.trainer entries override them)."""
        return {}

    def headline_metrics(self) -> tuple[str, ...] | None:
        """fnmatch patterns of the summary keys the end-of-run table shows (None: test/*, symmetry defects,
        regime)."""
        return None

    def progress(self) -> tuple[str, int, int] | None:
        """(unit, done, total) of the task's own budget for plain progress lines (None: Lightning's epochs)."""
        return None

    def syre_note(self) -> str:
        """What a figure states about symmetry removal: off, or the syre class and its strength."""
        if self.syre is None or type(self.syre).__name__ == "Off":
            return "syre off"
        sigma = getattr(self.syre, "sigma0", None)
        return f"syre on: {type(self.syre).__name__}" + (f", sigma0 = {sigma:g}" if sigma is not None else "")

    def engine_info(self) -> dict | None:
        """Which training engine ran, for results.json env.engine (None: Lightning's own loop)."""
        return None

    def member_status(self) -> list[str]:
        """'ok' or 'diverged' for every member."""
        return ["ok"] * self.members

    def restore_best(self) -> None:
        """Put the selected (best validation) parameters into the model before evaluation."""

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        """Metrics the task computes itself after training, each a (K,) tensor (e.g. test/mse)."""
        return {}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        """Write the task's figures as PNG files; return name -> path."""
        return {}

    def objective(self, metrics: dict) -> float | None:
        """The number an Optuna sweeper minimises (run() returns it)."""
        return None
