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

import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from symexp.divergence import Diverged, DivergenceGuard, loss_members, loss_reason, nonfinite_members


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
    # a training loss above this marks its member diverged (non-finite losses and parameters always do)
    divergence_loss: float = math.inf

    def __init__(self, model: torch.nn.Module, datamodule=None, seeds: Sequence[int] = (0,), syre=None):
        super().__init__()
        self.model = model
        self.datamodule = datamodule
        self.seeds = list(seeds)
        self.syre = syre
        self.register_buffer("diverged", torch.zeros(len(self.seeds), dtype=torch.bool))
        self.divergence_reason: str | None = None  # the first member's; checkpoints carry it

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

    # ------------------------------------------------------------------ divergence (symexp.divergence)
    def configure_callbacks(self):
        return [DivergenceGuard()]

    def divergence_step(self) -> int:
        """The step a divergence is reported at: the task's own data/env step when it counts one."""
        return int(getattr(self, "data_step", self.global_step))

    def _trained_parameters(self):
        """What training moves: a frozen parameter (a fixed target network, a mask) is not checked."""
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    @torch.no_grad()
    def check_divergence(self, loss: torch.Tensor | None = None, *, parameters: bool = True) -> None:
        """Mark the members whose ``loss`` (one value per member, or one for all) is non-finite or above
        ``divergence_loss``, or (``parameters``) whose parameters are not finite; raise Diverged once every
        member has diverged. Manual-optimisation tasks call it after their optimizer steps."""
        bad = torch.zeros(self.members, dtype=torch.bool)
        what = None
        if loss is not None:
            bad |= loss_members(loss, self.members, self.divergence_loss)
            if bool(bad.any()):
                what = loss_reason(loss, self.divergence_loss)
        if parameters:
            params, name = nonfinite_members(self._trained_parameters(), self.members)
            if name is not None:
                bad |= params
                what = what or f"parameter {name} is not finite"
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.world_size > 1:  # every rank stops together, or DDP would hang
            bad = torch.tensor([trainer.strategy.reduce_boolean_decision(bool(b), all=False) for b in bad])
            what = what or "another rank diverged"
        if self._mark_diverged(bad, what) and bool(self.diverged.all()):
            raise Diverged(self.divergence_reason)

    def _mark_diverged(self, bad: torch.Tensor, what: str | None) -> bool:
        """Record the members of ``bad`` not marked before (and the first reason); whether there were any."""
        new = bad.cpu() & ~self.diverged.cpu()
        if not bool(new.any()):
            return False
        self.diverged |= new.to(self.diverged.device)
        ids = new.nonzero().flatten().tolist()
        members = "" if self.members == 1 else f" (member{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))})"
        self.divergence_reason = self.divergence_reason or (
            f"{type(self).__name__} diverged at step {self.divergence_step()}: {what}{members}")
        return True

    @torch.no_grad()
    def whole_run_diverged(self) -> str | None:
        """After training (rank zero alone): the reason when every member diverged, parameters checked once
        more; None otherwise."""
        bad, name = nonfinite_members(self._trained_parameters(), self.members)
        if name is not None:
            self._mark_diverged(bad, f"parameter {name} is not finite after training")
        return self.divergence_reason if bool(self.diverged.all()) else None

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
        checkpoint["divergence_reason"] = self.divergence_reason

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from symexp.checkpointing import unpack

        if self.syre is not None and "syre" in checkpoint and hasattr(self.syre, "load_state_dict"):
            self.syre.load_state_dict(checkpoint["syre"])
        if "task_state" in checkpoint:
            for key, value in unpack(checkpoint["task_state"]).items():
                if key in self.resumable:  # older checkpoints may carry keys that are buffers now
                    setattr(self, key, _restored(getattr(self, key, None), value))
        checkpoint.get("state_dict", {}).setdefault("diverged", self.diverged.clone())  # from before the buffer
        self.divergence_reason = checkpoint.get("divergence_reason")

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
        return ["diverged" if d else "ok" for d in self.diverged.tolist()]

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
