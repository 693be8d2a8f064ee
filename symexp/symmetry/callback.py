"""The one callback that applies the metric group: curves during training, all metrics at the end."""

from __future__ import annotations

import lightning as L
import torch

from symexp.stats import median as midpoint_median
from symexp.symmetry.metrics import Metric, Result


def median(value) -> float | str:
    """The ensemble summary of a per-member value: the median (the most common label for strings)."""
    if isinstance(value, list):
        return max(set(value), key=value.count) if value else ""
    t = torch.as_tensor(value, dtype=torch.float64).flatten()
    finite = t[torch.isfinite(t)]
    return float(midpoint_median(finite))


class SymmetryMetrics(L.Callback):
    def __init__(self, metrics: dict[str, Metric]) -> None:
        self.metrics = {k: m for k, m in metrics.items() if m is not None}

    def on_validation_epoch_end(self, trainer: L.Trainer, task: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        for metric in self.metrics.values():
            if metric.final_only or metric.every_n_epochs <= 0 or epoch % metric.every_n_epochs:
                continue
            with torch.no_grad():
                for key, value in metric(task, {}).items():
                    if not isinstance(value, list):
                        task.log(key, median(value), batch_size=1)

    def compute(self, task) -> Result:
        """Every metric after training, in config order (final-only ones last), on the task's own results."""
        computed: Result = dict(task.final_metrics())
        ordered = sorted(self.metrics.values(), key=lambda m: m.final_only)
        for metric in ordered:
            computed.update(metric(task, computed))
        return computed
