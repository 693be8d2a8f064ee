"""Continual learning on a stream of permuted copies of a dataset (seed 002 Fig. 11): ``epochs_per_task``
epochs on each task in turn with one optimizer throughout (SGD, weight decay 0.01 in the paper). At
every task start the tracked layers' covariance rank is measured on that task's probe inputs; after
every task the accuracy on every task seen so far is recorded (the accuracy matrix).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from symexp.tasks.classification import ClassificationTask, evaluate


class ContinualTask(ClassificationTask):
    resumable = (*ClassificationTask.resumable, "acc_matrix", "task_start_ranks")

    def __init__(self, *args, epochs_per_task: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if epochs_per_task <= 0:
            raise ValueError(f"task.epochs_per_task: must be positive, got {epochs_per_task}")
        self.epochs_per_task = epochs_per_task
        self.tasks = self.datamodule.task_count
        self.datamodule.epochs_per_task = epochs_per_task
        self.acc_matrix = np.full((self.tasks, self.tasks), np.nan)
        self.task_start_ranks: list[dict[str, float]] = []

    def trainer_defaults(self) -> dict:
        return {**super().trainer_defaults(), "max_epochs": self.tasks * self.epochs_per_task,
                "reload_dataloaders_every_n_epochs": 1}

    def on_fit_start(self) -> None:  # ranks are taken at every task start instead
        pass

    def on_train_epoch_start(self) -> None:
        if self.current_epoch % self.epochs_per_task == 0:
            self.datamodule.set_task(self.current_epoch // self.epochs_per_task)
            self.task_start_ranks.append(self.snapshot())

    def on_train_epoch_end(self) -> None:
        if (self.current_epoch + 1) % self.epochs_per_task:
            return
        t = self.current_epoch // self.epochs_per_task
        for s in range(t + 1):
            x, y = self.datamodule.split("test", task=s)
            self.acc_matrix[t, s] = evaluate(self.model, x, y)[1]
        self.log("cl/new_task_acc", float(self.acc_matrix[t, t]))
        self.log("cl/seen_mean_acc", float(np.nanmean(self.acc_matrix[t, : t + 1])))

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        out = {k: v for k, v in super().final_metrics().items() if not k.startswith("rank/")}
        done = [t for t in range(self.tasks) if not np.isnan(self.acc_matrix[t, t])]
        last = done[-1] if done else 0
        seen = self.acc_matrix[last, : last + 1]
        values = {"test/acc": float(np.nanmean(seen)), "cl/new_task_acc_last": float(self.acc_matrix[last, last])}
        for t in done:
            values[f"cl/new_task_acc/t{t}"] = float(self.acc_matrix[t, t])
        for t, ranks in enumerate(self.task_start_ranks):
            for key, v in ranks.items():
                if key.endswith("/cov_rank"):
                    values[f"{key.replace('rank/', f'rank/task{t}/', 1)}"] = v
        out.update({k: torch.tensor([v]) for k, v in values.items()})
        return out

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.tasks.vision_plots import plot_continual

        diag = [float(self.acc_matrix[t, t]) for t in range(self.tasks) if not np.isnan(self.acc_matrix[t, t])]
        keys = sorted({k for r in self.task_start_ranks for k in r if k.endswith("/cov_rank")})
        ranks = {k.removeprefix("rank/"): [r[k] for r in self.task_start_ranks] for k in keys}
        return {"continual": plot_continual(diag, ranks, np.nan_to_num(self.acc_matrix, nan=0.0), fig_dir / "continual.png")}
