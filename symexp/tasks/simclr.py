"""SimCLR (seed 002 Sec. 6.5, Table 1): NT-Xent on two augmented views, then linear probes on the
features before the projection head (penultimate) and after it (last layer), and the low-rankness of
both: the fraction of covariance eigenvalues below 1e-5.

The probes are multinomial logistic regressions trained full-batch with L-BFGS on frozen features of
the (un-augmented) training split and scored on the test split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from symexp.data.augment import simclr_view
from symexp.symmetry.rank import covariance_eigenvalues, covariance_rank, low_rankness
from symexp.tasks.base import SymexpTask


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """The normalised-temperature cross-entropy of SimCLR over the 2N views of a batch."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def linear_probe(f_train, y_train, f_test, y_test, classes: int, steps: int = 100, l2: float = 1e-4) -> float:
    """Test accuracy of a logistic-regression probe (features scaled by one global std, not per unit,
    so collapsed directions stay collapsed)."""
    scale = f_train.std().clamp_min(1e-8)
    f_train, f_test = f_train / scale, f_test / scale
    with torch.enable_grad():
        w = torch.zeros(f_train.shape[1], classes, device=f_train.device, requires_grad=True)
        b = torch.zeros(classes, device=f_train.device, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(f_train @ w + b, y_train) + l2 * w.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
    return float(((f_test @ w + b).argmax(1) == y_test).float().mean())


class SimCLRTask(SymexpTask):
    def __init__(
        self,
        model: torch.nn.Module,
        datamodule,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable | None = None,
        epochs: int = 10,
        temperature: float = 0.5,
        probe_train: int = 10_000,
        probe_steps: int = 100,
        lowrank_tol: float = 1e-5,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if epochs <= 0 or temperature <= 0:
            raise ValueError(f"task.epochs/temperature: must be positive, got {epochs}, {temperature}")
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.epochs, self.temperature = epochs, temperature
        self.probe_train, self.probe_steps, self.lowrank_tol = probe_train, probe_steps, lowrank_tol

    def configure_optimizers(self):
        opt = self.attach_syre(self.optimizer_factory(params=[p for p in self.model.parameters() if p.requires_grad]))
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.scheduler_factory(optimizer=opt)}

    def trainer_defaults(self) -> dict:
        return {"max_epochs": self.epochs, "num_sanity_val_steps": 0, "limit_val_batches": 0, "log_every_n_steps": 10}

    def training_step(self, batch, batch_idx):
        x = batch[0]
        loss = nt_xent(self.model(simclr_view(x)), self.model(simclr_view(x)), self.temperature)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        return None

    @torch.no_grad()
    def _features(self, split: str, limit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = self.datamodule.split(split)
        x, y = x[:limit], y[:limit]
        was_training = self.model.training
        self.model.eval()
        pen, last = [], []
        for i in range(0, len(x), 500):
            h = self.model.features(x[i : i + 500].to(self.device))
            pen.append(h)
            last.append(self.model.head(h))
        self.model.train(was_training)
        return torch.cat(pen), torch.cat(last), y.to(self.device)

    def probe_inputs(self, n: int) -> torch.Tensor:
        return self.datamodule.probe_inputs(n)

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        pen_tr, last_tr, y_tr = self._features("train", self.probe_train)
        pen_te, last_te, y_te = self._features("test", len(self.datamodule.y_test))
        k = self.datamodule.num_classes
        out = {
            "probe/penultimate_acc": linear_probe(pen_tr, y_tr, pen_te, y_te, k, self.probe_steps),
            "probe/last_acc": linear_probe(last_tr, y_tr, last_te, y_te, k, self.probe_steps),
            "rank/last/low_rankness": float(low_rankness(last_te, self.lowrank_tol)),
            "rank/penultimate/low_rankness": float(low_rankness(pen_te, self.lowrank_tol)),
            "rank/last/cov_rank": float(covariance_rank(last_te, self.lowrank_tol)),
            "rank/penultimate/cov_rank": float(covariance_rank(pen_te, self.lowrank_tol)),
        }
        self._spectra = {"penultimate": covariance_eigenvalues(pen_te)[0].cpu(), "last": covariance_eigenvalues(last_te)[0].cpu()}
        return {key: torch.tensor([v]) for key, v in out.items()}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.tasks.vision_plots import plot_spectra

        spectra = getattr(self, "_spectra", None)
        return {"spectrum": plot_spectra(spectra, self.lowrank_tol, fig_dir / "spectrum.png")} if spectra else {}

    def objective(self, metrics: dict) -> float | None:
        acc = metrics.get("probe/last_acc")
        return 1.0 - float(acc) if isinstance(acc, (int, float)) else None
