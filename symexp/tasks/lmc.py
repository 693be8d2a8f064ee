"""Linear mode connectivity (seed 002 App. B.7, Fig. 13; Lim et al. 2024): train two models from two
init seeds on the same data, evaluate theta(lam) = (1 - lam) theta_A + lam theta_B on the test set at
``points`` values of lam, and report the barrier: the worst rise of the loss (drop of the accuracy) along
the path above (below) the straight line between the endpoints.

Both models get their own copy of the syre object taken before either is configured, so theta0 and the
W-fix masks and fixed values (drawn from the syre seed) are shared, as the comparison requires.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from symexp.models.vision_common import reinitialize
from symexp.tasks.base import SymexpTask
from symexp.tasks.classification import evaluate


def interpolate(model_a: torch.nn.Module, model_b: torch.nn.Module, lam: float) -> torch.nn.Module:
    """A copy of model_a whose float parameters and buffers are (1 - lam) A + lam B."""
    mixed = copy.deepcopy(model_a)
    sb = model_b.state_dict()
    state = {k: (1 - lam) * v + lam * sb[k] if v.is_floating_point() else v for k, v in model_a.state_dict().items()}
    mixed.load_state_dict(state)
    return mixed


def barrier(values: np.ndarray, higher_is_worse: bool = True) -> float:
    """Max deviation of a path curve from the chord between its endpoints, in the bad direction."""
    lam = np.linspace(0, 1, len(values))
    chord = (1 - lam) * values[0] + lam * values[-1]
    return float(np.max(values - chord) if higher_is_worse else np.max(chord - values))


class LMCTask(SymexpTask):
    def __init__(
        self,
        model: torch.nn.Module,
        datamodule,
        optimizer: Callable[..., torch.optim.Optimizer],
        epochs: int = 25,
        points: int = 25,
        second_seed_offset: int = 1000,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if epochs <= 0 or points < 2:
            raise ValueError(f"task.epochs/points: need epochs > 0 and points >= 2, got {epochs}, {points}")
        self.automatic_optimization = False
        self.model_b = reinitialize(copy.deepcopy(model), self.seeds[0] + second_seed_offset)
        self.syre_b = copy.deepcopy(syre)
        self.optimizer_factory, self.epochs, self.points = optimizer, epochs, points
        self.path: dict[str, np.ndarray] = {}

    def configure_optimizers(self):
        opt_a = self.attach_syre(self.optimizer_factory(params=list(self.model.parameters())))
        opt_b = self.optimizer_factory(params=list(self.model_b.parameters()))
        if self.syre_b is not None:
            self.syre_b.configure(self.model_b, opt_b)
        return [opt_a, opt_b]

    def trainer_defaults(self) -> dict:
        return {"max_epochs": self.epochs, "num_sanity_val_steps": 0, "limit_val_batches": 0, "log_every_n_steps": 10}

    def _step(self, model, opt, syre, x, y) -> torch.Tensor:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        raw = getattr(opt, "optimizer", opt)
        if syre is not None:
            syre.before_step(model, raw)
        opt.step()
        if syre is not None:
            syre.after_step(model, raw)
        return loss.detach()

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt_a, opt_b = self.optimizers()
        la = self._step(self.model, opt_a, self.syre, x, y)
        lb = self._step(self.model_b, opt_b, self.syre_b, x, y)
        self.check_divergence(la + lb, parameters=False)  # both models; parameters at epoch ends
        self.log_dict({"train/loss_a": la, "train/loss_b": lb}, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        return None

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        x, y = self.datamodule.split("test")
        lams = np.linspace(0, 1, self.points)
        losses, accs = [], []
        for lam in lams:
            loss, acc = evaluate(interpolate(self.model, self.model_b, float(lam)), x, y)
            losses.append(loss)
            accs.append(acc)
        self.path = {"lambda": lams, "loss": np.array(losses), "acc": np.array(accs)}
        out = {
            "lmc/loss_barrier": barrier(self.path["loss"], True),
            "lmc/acc_barrier": barrier(self.path["acc"], False),
            "test/acc_a": accs[0], "test/acc_b": accs[-1], "test/acc": 0.5 * (accs[0] + accs[-1]),
            "test/loss": 0.5 * (losses[0] + losses[-1]), "lmc/mid_acc": accs[len(accs) // 2],
        }
        return {k: torch.tensor([float(v)]) for k, v in out.items()}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.tasks.vision_plots import plot_curves

        if not self.path:
            return {}
        fig_dir.mkdir(parents=True, exist_ok=True)
        np.savetxt(fig_dir / "lmc_path.csv", np.stack([self.path["lambda"], self.path["loss"], self.path["acc"]], 1),
                   delimiter=",", header="lambda,test_loss,test_acc", comments="")
        series = {"test loss": self.path["loss"], "test accuracy": self.path["acc"]}
        return {"lmc_path": plot_curves(self.path["lambda"], series, "lambda", fig_dir / "lmc_path.png")}

    def objective(self, metrics: dict) -> float | None:
        value = metrics.get("lmc/loss_barrier")
        return float(value) if isinstance(value, (int, float)) else None
