"""Minimise an objective of an ensemble model's parameters (seed 002's controlled experiments).

The model says what its loss is: ``model.loss(x, y) -> (K,)`` per-member losses on a batch (x, y are
None for data-free objectives). The task runs ``steps`` optimizer steps, ``log_every`` per Lightning
epoch (so per-step framework overhead stays small), full batch or a per-member random minibatch of
``batch_size``. Members share nothing, so summing their losses gives each its own gradient. Optional
model hooks: ``curves(task) -> {key: (K,)}`` recorded every epoch (and drawn), ``final_metrics(task)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from symexp.seeding import generator
from symexp.stats import median
from symexp.tasks.base import SymexpTask


class ObjectiveTask(SymexpTask):
    resumable = ("history", "_gens")

    def __init__(
        self,
        model: torch.nn.Module,
        datamodule,
        optimizer: Callable[..., torch.optim.Optimizer],
        steps: int = 1000,
        log_every: int = 100,
        batch_size: int | None = None,
        divergence_loss: float = 1e12,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if steps <= 0 or log_every <= 0:
            raise ValueError(f"task.steps/task.log_every: must be positive, got {steps}, {log_every}")
        if not hasattr(model, "loss"):
            raise ValueError(f"task: model {type(model).__name__} has no loss(x, y); task=objective needs one")
        self.automatic_optimization = False
        self.optimizer_factory, self.steps = optimizer, steps
        self.log_every, self.batch_size, self.divergence_loss = min(log_every, steps), batch_size, divergence_loss
        self.register_buffer("data_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_loss", torch.full((self.members,), math.nan))
        self.history: dict[str, list] = {"step": [], "train/loss": []}
        self._gens = [generator(s, "order") for s in self.seeds]

    def configure_optimizers(self):
        return self.attach_syre(self.optimizer_factory(params=[p for p in self.model.parameters() if p.requires_grad]))

    def trainer_defaults(self) -> dict:
        return {"max_epochs": math.ceil(self.steps / self.log_every), "num_sanity_val_steps": 0,
                "log_every_n_steps": 1, "check_val_every_n_epoch": 1}

    def progress(self) -> tuple[str, int, int]:
        """Optimizer steps: Lightning's epochs here are logging intervals of log_every steps."""
        return "step", int(self.data_step), self.steps

    def on_fit_start(self) -> None:
        dm = self.datamodule
        for name in ("x_train", "y_train", "x_val", "y_val"):
            if getattr(dm, name, None) is not None:
                setattr(dm, name, getattr(dm, name).to(self.device))

    def eval_inputs(self) -> torch.Tensor:
        return self.datamodule.x_val

    def _batch(self):
        dm = self.datamodule
        if dm.x_train is None:
            return None, None
        if self.batch_size is None or self.batch_size >= dm.n_train:
            return dm.x_train, dm.y_train
        idx = torch.stack([torch.randint(dm.n_train, (self.batch_size,), generator=g) for g in self._gens])
        idx = idx.to(self.device)
        rows = torch.arange(self.members, device=self.device)[:, None]
        return dm.x_train[rows, idx], dm.y_train[rows, idx]

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        raw = getattr(opt, "optimizer", opt)
        n = min(self.log_every, self.steps - int(self.data_step))
        self.model.train()
        for _ in range(n):
            x, y = self._batch()
            raw.zero_grad(set_to_none=True)
            loss = self.model.loss(x, y)
            loss.sum().backward()
            self.syre_before_step(raw)
            raw.step()
            self.syre_after_step(raw)
        self.data_step += n
        self.last_loss = loss.detach()
        self.check_divergence(self.last_loss)
        if int(self.data_step) >= self.steps:
            self.trainer.should_stop = True
        return None

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        self.model.eval()
        self.history["step"].append(int(self.data_step))
        self.history["train/loss"].append(self.last_loss.cpu().clone())
        if hasattr(self.model, "curves"):
            for key, value in self.model.curves(self).items():
                self.history.setdefault(key, []).append(torch.as_tensor(value).detach().cpu().clone())
                self.log(key, float(median(torch.as_tensor(value, dtype=torch.float64).flatten())), batch_size=1)
        ok = ~self.diverged
        if ok.any():
            self.log("train/loss", median(self.last_loss[ok]), prog_bar=True, batch_size=1)

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        self.model.eval()
        x, y = self.datamodule.x_train, self.datamodule.y_train
        out = {"train/loss": self.model.loss(x, y).detach()}
        if hasattr(self.model, "final_metrics"):
            out.update(self.model.final_metrics(self))
        return out

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.figstyle import label, plt, rc_context, save

        keys = [k for k in self.history if k != "step" and self.history[k]]
        if not keys or not self.history["step"]:
            return {}
        steps = self.history["step"][: len(self.history[keys[0]])]
        with rc_context():
            fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
            for ax, key in zip(axes[0], keys):
                vals = torch.stack(self.history[key]).double()  # (T, K)
                for k in range(vals.shape[1]):
                    ax.plot(steps[: len(vals)], vals[:, k], lw=1, alpha=0.8)
                ax.set(xlabel="training step", ylabel=label(key))
            members = torch.stack(self.history[keys[0]]).shape[1]
            fig.suptitle(f"{type(self.model).__name__}, {self.syre_note()}; one line per member ({members})")
            path = save(fig, fig_dir / "curves.png")
        # the numbers behind it, so a sweep report can overlay the curves of its jobs (step, then (T, K) lists)
        data = {"step": steps, **{k: torch.stack(self.history[k]).double().tolist() for k in keys}}
        (fig_dir / "curves.json").write_text(json.dumps(data))
        out = {"curves": path}
        if hasattr(self.model, "figures"):
            out.update(self.model.figures(self, fig_dir))
        return out

    def objective(self, metrics: dict) -> float | None:
        value = metrics.get("test/loss", metrics.get("train/loss"))
        return float(value) if isinstance(value, (int, float)) else None
