"""beta-VAE with encoder-only weight decay (seed 002 Sec. 6.4, Figs. 9-10; Wang & Ziyin 2022).

Loss per sample: reconstruction (sum of squared errors over pixels) + beta * KL(q(z|x) || N(0, prior_var I)).
Weight decay ``encoder_weight_decay`` goes on the encoder only (the decoder gets ``decoder_weight_decay``,
0 in the paper); syre is restricted to the encoder by the preset (syre.include: ["encoder.*"]).
Posterior collapse shows as a low rank of the encoder output (the posterior mean) on 1000 samples,
with eigenvalues below 1e-6 set to zero, and a large reconstruction loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from symexp.symmetry.rank import covariance_rank, effective_rank
from symexp.tasks.base import SymexpTask


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor, prior_var: float) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, prior_var)) summed over latent dims, per sample."""
    var = logvar.exp()
    return 0.5 * ((var + mu.square()) / prior_var - 1.0 - logvar + math.log(prior_var)).sum(1)


class VAETask(SymexpTask):
    resumable = ("history",)

    def __init__(
        self,
        model: torch.nn.Module,
        datamodule,
        optimizer: Callable[..., torch.optim.Optimizer],
        epochs: int = 10,
        beta: float = 1.0,
        prior_var: float = 0.01,
        encoder_weight_decay: float = 0.0,
        decoder_weight_decay: float = 0.0,
        probe_size: int = 1000,
        rank_tol: float = 1e-6,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if beta < 0 or prior_var <= 0:
            raise ValueError(f"task.beta/prior_var: need beta >= 0 and prior_var > 0, got {beta}, {prior_var}")
        if epochs <= 0:
            raise ValueError(f"task.epochs: must be positive, got {epochs}")
        self.optimizer_factory, self.epochs = optimizer, epochs
        self.beta, self.prior_var = beta, prior_var
        self.encoder_weight_decay, self.decoder_weight_decay = encoder_weight_decay, decoder_weight_decay
        self.probe_size, self.rank_tol = probe_size, rank_tol
        self.history: list[dict[str, float]] = []
        self._val: list[float] = [0.0, 0.0, 0.0]

    def configure_optimizers(self):
        groups = [
            {"params": list(self.model.encoder.parameters()), "weight_decay": self.encoder_weight_decay},
            {"params": list(self.model.decoder.parameters()), "weight_decay": self.decoder_weight_decay},
        ]
        return self.attach_syre(self.optimizer_factory(params=groups))

    def trainer_defaults(self) -> dict:
        return {"max_epochs": self.epochs, "num_sanity_val_steps": 0, "log_every_n_steps": 10}

    def terms(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        recon, mu, logvar = self.model(x, sample=sample)
        return (recon - x).square().flatten(1).sum(1), kl_to_prior(mu, logvar, self.prior_var)

    def training_step(self, batch, batch_idx):
        rec, kl = self.terms(batch[0])
        loss = (rec + self.beta * kl).mean()
        self.log_dict({"train/loss": loss, "train/recon": rec.mean(), "train/kl": kl.mean()}, prog_bar=True)
        return loss

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        rec, kl = self.terms(batch[0], sample=False)
        self._val[0] += float(rec.sum())
        self._val[1] += float(kl.sum())
        self._val[2] += len(rec)

    def on_validation_epoch_end(self) -> None:
        rec, kl, n = self._val
        self._val = [0.0, 0.0, 0.0]
        if n:
            row = {"epoch": float(self.current_epoch + 1), "val/recon": rec / n, "val/kl": kl / n, **self.encoder_rank()}
            self.history.append(row)
            self.log_dict({k: v for k, v in row.items() if k != "epoch"}, batch_size=1)

    def probe_inputs(self, n: int) -> torch.Tensor:
        return self.datamodule.probe_inputs(n)

    @torch.no_grad()
    def encoder_rank(self) -> dict[str, float]:
        mu, _ = self.model.encode(self.probe_inputs(self.probe_size).to(self.device))
        return {"rank/encoder/cov_rank": float(covariance_rank(mu, self.rank_tol)),
                "rank/encoder/effective_rank": float(effective_rank(mu))}

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        x, _ = self.datamodule.split("test")
        rec, kl = self.terms(x.to(self.device), sample=False)
        out = {"test/recon": float(rec.mean()), "test/kl": float(kl.mean()),
               "test/loss": float((rec + self.beta * kl).mean()), **self.encoder_rank()}
        return {k: torch.tensor([v]) for k, v in out.items()}

    @torch.no_grad()
    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.tasks.vision_plots import plot_curves, plot_image_grid

        x = self.probe_inputs(8).to(self.device)
        recon, _, _ = self.model(x, sample=False)
        figs = {"reconstructions": plot_image_grid([x, recon], ["input", "recon"], fig_dir / "reconstructions.png")}
        if self.history:
            epochs = [r["epoch"] for r in self.history]
            series = {k: [r[k] for r in self.history] for k in ("val/recon", "val/kl", "rank/encoder/cov_rank")}
            figs["curves"] = plot_curves(epochs, series, "epoch", fig_dir / "curves.png")
        return figs

    def objective(self, metrics: dict) -> float | None:
        value = metrics.get("test/loss")
        return float(value) if isinstance(value, (int, float)) else None
