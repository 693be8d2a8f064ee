"""One detection of divergence for every task: a non-finite (or too large) training loss, or a non-finite
parameter.

Every task inherits it from ``SymexpTask``: automatic-optimisation tasks get their loss checked after each
batch by :class:`DivergenceGuard` (the task's ``configure_callbacks``); manual-optimisation tasks pass
their loss to ``task.check_divergence`` where it is computed. Parameters are checked before every
validation, at every epoch end (so no checkpoint holds a diverged state unnoticed) and once more after
training. A member that diverges is marked in the task's ``diverged`` buffer with the first reason. When
every member has diverged, :class:`Diverged` is raised at once, before another step, a rank metric or a
figure can read NaN parameters (an SVD of NaN raises LinAlgError); ``symexp.run`` catches it and records
``status: diverged`` with the reason, without computing metrics.
"""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
import torch


class Diverged(RuntimeError):
    """Every member of the run diverged; the message says at which step and on what."""


def nonfinite_members(named: Iterable[tuple[str, torch.Tensor]], members: int) -> tuple[torch.Tensor, str | None]:
    """(K,) mask of the members holding a non-finite parameter, and the first such parameter's name.

    Ensemble-native models stack members on dim 0 (symexp.models); a tensor without that axis marks
    every member."""
    bad = torch.zeros(members, dtype=torch.bool)
    first = None
    for name, p in named:
        finite = torch.isfinite(p.detach())
        if bool(finite.all()):
            continue
        first = first or name
        if members > 1 and p.dim() >= 1 and p.shape[0] == members:
            bad |= ~finite.flatten(1).all(1).cpu()
        else:
            bad[:] = True
    return bad, first


def loss_members(loss: torch.Tensor, members: int, limit: float) -> torch.Tensor:
    """(K,) mask of the members whose loss is non-finite or above ``limit``; a loss that is not one value
    per member (a scalar mean) marks every member."""
    values = loss.detach().reshape(-1)
    bad = ~torch.isfinite(values) | (values > limit)
    if values.numel() == members:
        return bad.cpu()
    return bad.any().cpu().expand(members).clone()


def loss_reason(loss: torch.Tensor, limit: float) -> str:
    """What the reason line says about a diverged loss: its first non-finite value, or its largest one and
    the limit it passed."""
    values = loss.detach().reshape(-1).double().cpu()
    nonfinite = values[~torch.isfinite(values)]
    if nonfinite.numel():
        return f"training loss is {float(nonfinite[0]):g}"
    return f"training loss {float(values.max()):.3g} > task.divergence_loss={limit:g}"


class DivergenceGuard(L.Callback):
    """Checks the loss Lightning returns after every batch and the parameters before validation and at every
    epoch end; the decisions themselves live in ``SymexpTask.check_divergence``."""

    def on_train_batch_end(self, trainer: L.Trainer, task, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            task.check_divergence(loss, parameters=False)

    def on_validation_start(self, trainer: L.Trainer, task) -> None:
        if not trainer.sanity_checking:
            task.check_divergence()

    def on_train_epoch_end(self, trainer: L.Trainer, task) -> None:
        task.check_divergence()
