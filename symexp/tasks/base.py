"""The contract between symexp.run and every task.

A task is a LightningModule over an (optionally ensemble-native) model. Besides training it answers:
per-member status, the metrics it computes itself at the end, its figures, and the Trainer settings its
budget implies. Symmetry metrics from the metric group are applied by symexp.symmetry.callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch


class SymexpTask(L.LightningModule):
    """Base class; subclasses implement training and may override the hooks below."""

    def __init__(self, model: torch.nn.Module, datamodule=None, seeds: Sequence[int] = (0,), syre=None):
        super().__init__()
        self.model = model
        self.datamodule = datamodule
        self.seeds = list(seeds)
        self.syre = syre

    @property
    def members(self) -> int:
        return len(self.seeds)

    def trainer_defaults(self) -> dict:
        """Trainer kwargs implied by the task's own budget (cfg.trainer entries override them)."""
        return {}

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
