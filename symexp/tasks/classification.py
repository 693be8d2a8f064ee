"""Supervised image classification with representation-rank tracking (seed 002 Figs. 1, 3, 5, 8, 12, 14).

Cross-entropy, any optimizer/scheduler from the config, the syre hooks through SymexpTask. Besides test
accuracy it follows, over training, the covariance rank and effective rank of named layers on a fixed
probe batch (``track_layers``: alias -> module name), the number of distinct hidden neurons for nets
that have identical-neuron initialisations, and optionally the NTK rank at the start and the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from symexp.data.augment import crop_flip
from symexp.symmetry.rank import covariance_eigenvalues
from symexp.symmetry.representation import capture, layer_ranks, ntk_ranks, permutation_rank_bound
from symexp.tasks.base import SymexpTask


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of model on (x, y), in eval mode, batched."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
        logits = model(xb)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return loss / n, correct / n


def _layers(track_layers: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    if not track_layers:
        return {}
    return dict(track_layers) if isinstance(track_layers, Mapping) else {n: n for n in track_layers}


class ClassificationTask(SymexpTask):
    resumable = ("loss_history", "epoch_history", "initial")

    def __init__(
        self,
        model: torch.nn.Module,
        datamodule,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable | None = None,
        epochs: int = 10,
        max_steps: int = -1,
        track_layers: Sequence[str] | Mapping[str, str] | None = None,
        track_every: int = 1,
        probe_size: int = 1000,
        rank_tol: float = 1e-4,
        ntk_samples: int = 0,
        ntk_tol: float = 1e-6,
        history_every: int = 10,
        train_eval_size: int = 10_000,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if len(self.seeds) != 1:
            raise ValueError(f"ensemble.size: the {type(self).__name__} trains one model; use ensemble.size=1")
        for key, value in (("epochs", epochs), ("track_every", track_every), ("probe_size", probe_size),
                           ("history_every", history_every)):
            if value <= 0:
                raise ValueError(f"task.{key}: must be positive, got {value}")
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.epochs, self.max_steps = epochs, max_steps
        self.track = _layers(track_layers)
        self.track_every, self.probe_size, self.rank_tol = track_every, probe_size, rank_tol
        self.ntk_samples, self.ntk_tol = ntk_samples, ntk_tol
        self.history_every, self.train_eval_size = history_every, train_eval_size
        self.loss_history: list[tuple[int, float]] = []
        self.epoch_history: list[dict[str, float]] = []
        self.initial: dict[str, float] = {}
        self._val = [0.0, 0, 0]

    # ---------------------------------------------------------------- Lightning plumbing
    def parameters_to_optimize(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def configure_optimizers(self):
        opt = self.attach_syre(self.optimizer_factory(params=self.parameters_to_optimize()))
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=opt), "interval": "epoch"}}

    def trainer_defaults(self) -> dict:
        return {"max_epochs": self.epochs, "max_steps": self.max_steps, "num_sanity_val_steps": 0,
                "check_val_every_n_epoch": 1, "log_every_n_steps": 10}

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        if getattr(self.datamodule, "augment", False):
            x = crop_flip(x)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"train/acc": (logits.argmax(1) == y).float().mean()}

    def training_step(self, batch, batch_idx):
        loss, logs = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict(logs)
        if self.global_step % self.history_every == 0:
            self.loss_history.append((int(self.global_step), float(loss.detach())))
        return loss

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self._val[0] += float(F.cross_entropy(logits, y, reduction="sum"))
        self._val[1] += int((logits.argmax(1) == y).sum())
        self._val[2] += len(y)

    def on_validation_epoch_end(self) -> None:
        loss_sum, correct, n = self._val
        self._val = [0.0, 0, 0]
        if n == 0 or self.trainer.sanity_checking:
            return
        row = {"epoch": float(self.current_epoch + 1), "val/acc": correct / n, "val/loss": loss_sum / n}
        if (self.current_epoch + 1) % self.track_every == 0:
            row.update(self.snapshot())
        self.epoch_history.append(row)
        self.log_dict({k: v for k, v in row.items() if k != "epoch"}, batch_size=1)

    def on_fit_start(self) -> None:
        if not self.epoch_history:
            self.initial = self.snapshot(ntk=self.ntk_samples > 0)
            self.epoch_history.append({"epoch": 0.0, **{k: v for k, v in self.initial.items() if "ntk" not in k}})

    # ---------------------------------------------------------------- measurements
    def probe_inputs(self, n: int) -> torch.Tensor:
        return self.datamodule.probe_inputs(n)

    def tracked_features(self) -> dict[str, torch.Tensor]:
        if not self.track:
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            feats = capture(self.model, self.probe_inputs(self.probe_size).to(self.device), list(self.track.values()))
        finally:
            self.model.train(was_training)
        return {alias: feats[name] for alias, name in self.track.items()}

    def snapshot(self, ntk: bool = False) -> dict[str, float]:
        """Ranks of the tracked layers (and distinct neurons; the NTK rank when asked) right now."""
        out = layer_ranks(self.tracked_features(), self.rank_tol)
        if hasattr(self.model, "distinct_neurons"):
            out["sym/distinct_neurons"] = float(self.model.distinct_neurons())
            out["sym/nearest_neuron_distance"] = self.model.nearest_neuron_distance()
        if ntk:
            x, y = self.datamodule.split("test")
            r = ntk_ranks(self.model, x[: self.ntk_samples].to(self.device), y[: self.ntk_samples].to(self.device), self.ntk_tol)
            out["rank/ntk"], out["rank/grad_cov"] = r["ntk_rank"], r["grad_cov_rank"]
            if hasattr(self.model, "distinct_neurons"):
                out["rank/ntk_bound"] = permutation_rank_bound(self.model)
        return out

    # ---------------------------------------------------------------- after training
    def headline_metrics(self) -> tuple[str, ...]:
        """Accuracy and the tracked layers' covariance ranks (what seed 002's vision figures plot)."""
        return ("test/*", "train/acc", "rank/*/cov_rank", "rank/ntk", "rank/grad_cov", "sym/distinct_neurons",
                "cl/new_task_acc_last")

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        dm = self.datamodule
        test_loss, test_acc = evaluate(self.model, *dm.split("test"))
        x_tr, y_tr = dm.split("train")
        train_loss, train_acc = evaluate(self.model, x_tr[: self.train_eval_size], y_tr[: self.train_eval_size])
        out = {"test/acc": test_acc, "test/loss": test_loss, "train/acc": train_acc, "train/loss": train_loss}
        out.update(self.snapshot(ntk=self.ntk_samples > 0))
        for key, value in self.initial.items():
            if key.startswith("rank/ntk") or key == "rank/grad_cov":
                out[f"{key}_init"] = value
        return {k: torch.tensor([float(v)]) for k, v in out.items()}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.tasks.vision_plots import plot_spectra, plot_training

        batches = getattr(self.trainer, "num_training_batches", None) if self._trainer is not None else None
        per_epoch = float(batches) if isinstance(batches, (int, float)) and 0 < batches < float("inf") else None
        figs = {"training": plot_training(self.loss_history, self.epoch_history, fig_dir / "training.png",
                                          steps_per_epoch=per_epoch, note=f"{type(self.model).__name__}, {self.syre_note()}")}
        feats = self.tracked_features()
        if feats:
            spectra = {alias: covariance_eigenvalues(f)[0].cpu() for alias, f in feats.items()}
            figs["spectrum"] = plot_spectra(spectra, self.rank_tol, fig_dir / "spectrum.png")
        return figs

    def objective(self, metrics: dict) -> float | None:
        acc = metrics.get("test/acc")
        return 1.0 - float(acc) if isinstance(acc, (int, float)) else None
