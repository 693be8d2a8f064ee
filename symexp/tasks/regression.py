"""Batch-size-1 regression on a symmetric target (seed 000's protocol), ensemble-native.

Manual optimisation: one Lightning training_step runs S optimizer steps (one unpaired point per member
per step) through an engine (symexp.engines), so per-step framework overhead does not dominate. One
Lightning epoch is ``val_every`` data epochs; after each, the held-out validation MSE updates every
member's best parameters, which are restored before the symmetry metrics are computed. An optional
learning-rate scheduler (MMNN's recipe is StepLR gamma 0.9) is stepped once per data epoch; the engines read
the learning rate at every call, so a new rate takes effect at the first chunk boundary after its epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from symexp.engines import build_engine, engine_info
from symexp.seeding import epoch_orders
from symexp.stats import median
from symexp.tasks.base import SymexpTask


class RegressionTask(SymexpTask):
    def __init__(
        self,
        model: torch.nn.Module,
        datamodule,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        epochs: int = 10_000,
        val_every: int = 10,
        steps_per_call: int | None = None,
        engine: str = "auto",
        divergence_loss: float = 1e6,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if epochs <= 0:
            raise ValueError(f"task.epochs: must be positive, got {epochs}")
        if val_every <= 0:
            raise ValueError(f"task.val_every: must be positive, got {val_every}")
        self.automatic_optimization = False
        self.optimizer_factory, self.scheduler_factory, self.engine_kind = optimizer, scheduler, engine
        self.epochs, self.val_every, self.divergence_loss = epochs, min(val_every, epochs), divergence_loss
        n = datamodule.n_train
        steps_per_lightning_epoch = self.val_every * n
        self.steps_per_call = math.gcd(steps_per_call or n, steps_per_lightning_epoch)
        datamodule.chunks_per_epoch = steps_per_lightning_epoch // self.steps_per_call
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        for i, p in enumerate(self.trainable):
            self.register_buffer(f"best_{i}", p.detach().clone())
        self.register_buffer("best_val", torch.full((self.members,), math.inf))
        self.register_buffer("best_epoch", torch.zeros(self.members, dtype=torch.long))
        self.register_buffer("data_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("train_loss_sum", torch.zeros(self.members))
        self.register_buffer("train_loss_count", torch.zeros(()))
        self.engine = None
        self._orders: tuple[int, torch.Tensor] | None = None

    # ---------------------------------------------------------------- Lightning plumbing
    def configure_optimizers(self):
        opt = self.attach_syre(self.optimizer_factory(params=self.trainable))
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=opt)}}

    def trainer_defaults(self) -> dict:
        chunks = self.datamodule.chunks_per_epoch
        return {
            "max_epochs": math.ceil(self.epochs / self.val_every),
            "num_sanity_val_steps": 0,
            "log_every_n_steps": chunks,
            "check_val_every_n_epoch": 1,
        }

    def progress(self) -> tuple[str, int, int]:
        return "epoch", int(self.data_step) // self.datamodule.n_train, self.epochs

    def engine_info(self) -> dict | None:
        return engine_info(self.engine) if self.engine is not None else None

    def on_fit_start(self) -> None:
        dm = self.datamodule
        for name in ("x_train", "y_train", "x_val", "y_val"):
            setattr(dm, name, getattr(dm, name).to(self.device))
        raw = self.optimizers()
        raw = getattr(raw, "optimizer", raw)
        self.engine = build_engine(self.engine_kind, self.model, raw, self.syre)

    def _order(self, epoch: int) -> torch.Tensor:
        if self._orders is None or self._orders[0] != epoch:
            n = self.datamodule.n_train
            self._orders = (epoch, epoch_orders(self.seeds, epoch, n, device=self.device)[:, 0])
        return self._orders[1]

    def _chunk(self, start: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (K, S, d) inputs and (K, S) targets of steps [start, start + steps)."""
        dm, n = self.datamodule, self.datamodule.n_train
        idx = []
        step = start
        while step < start + steps:
            epoch, i = divmod(step, n)
            take = min(n - i, start + steps - step)
            idx.append(self._order(epoch)[:, i : i + take])
            step += take
        idx = torch.cat(idx, 1)
        rows = torch.arange(self.members, device=idx.device)[:, None]
        return dm.x_train[rows, idx], dm.y_train[rows, idx]

    def training_step(self, batch, batch_idx):
        start = int(self.data_step)
        x, y = self._chunk(start, self.steps_per_call)
        losses = self.engine.run(x, y)
        self.data_step += self.steps_per_call
        self._step_scheduler(start)
        chunk_loss = losses.mean(1)
        self.train_loss_sum += torch.where(self.diverged | ~torch.isfinite(chunk_loss), 0.0, chunk_loss)
        self.train_loss_count += 1
        self.check_divergence(chunk_loss, parameters=False)  # parameters: at epoch ends (DivergenceGuard)
        return None

    def _step_scheduler(self, start: int) -> None:
        """One scheduler step per data epoch completed by the chunk that began at ``start``."""
        if self.scheduler_factory is None:
            return
        n = self.datamodule.n_train
        sched = self.lr_schedulers()
        for _ in range(int(self.data_step) // n - start // n):
            sched.step()

    def on_train_epoch_end(self) -> None:
        mean = self.train_loss_sum / self.train_loss_count.clamp_min(1)
        ok = ~self.diverged
        self.log("train/loss", median(mean[ok]) if ok.any() else torch.tensor(math.nan), prog_bar=True)
        self.log("train/epoch", float(self.data_step) / self.datamodule.n_train)
        self.train_loss_sum.zero_()
        self.train_loss_count.zero_()

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        dm = self.datamodule
        mse = (self.model(dm.x_val) - dm.y_val).square().mean(1)
        mse = torch.where(torch.isfinite(mse), mse, torch.full_like(mse, math.inf))
        improved = (mse < self.best_val) & ~self.diverged
        if improved.any():
            for i, p in enumerate(self.trainable):
                best = getattr(self, f"best_{i}")
                mask = improved.view(-1, *([1] * (p.dim() - 1)))
                best.copy_(torch.where(mask, p.detach(), best))
            self.best_val = torch.where(improved, mse, self.best_val)
            epoch = int(self.data_step) // dm.n_train
            self.best_epoch = torch.where(improved, torch.full_like(self.best_epoch, epoch), self.best_epoch)
        ok = ~self.diverged
        # each member's curve beside the median (up to symexp.loggers.MAX_MEMBER_KEYS members)
        if self.logger is not None and 1 < self.members <= 32:
            self.logger.log_metrics({f"member/{k}/val/mse": float(v) for k, v in enumerate(mse.tolist())},
                                    step=self.global_step)
        if ok.any():
            self.log("val/mse", median(mse[ok]), prog_bar=True, batch_size=1)
            self.log("val/best_mse", median(self.best_val[ok]), batch_size=1)

    # ---------------------------------------------------------------- after training
    @torch.no_grad()
    def restore_best(self) -> None:
        has_best = torch.isfinite(self.best_val)
        for i, p in enumerate(self.trainable):
            best = getattr(self, f"best_{i}")
            mask = has_best.view(-1, *([1] * (p.dim() - 1)))
            p.copy_(torch.where(mask, best, p))

    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        dm = self.datamodule
        grid = dm.grid.to(self.device).expand(self.members, -1, -1)
        pred = self.model(grid)
        mse = (pred - dm.y_grid.to(pred)).square().mean(1)
        indist = (self.model(dm.x_test.to(self.device)) - dm.y_test.to(pred)).square().mean(1)
        return {
            "test/mse": mse,
            "test/mse_indist": indist,
            "val/best_mse": self.best_val.clone(),
            "train/best_epoch": self.best_epoch.float(),
            "data/mirror_distance": dm.mirror_distance.clone(),
        }

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.plots import plot_partials

        return {"partials": plot_partials(self.model, self.datamodule, fig_dir / "partials.png", seed=self.seeds[0])}

    def objective(self, metrics: dict) -> float | None:
        value = metrics.get("test/mse")
        return float(value) if isinstance(value, (int, float)) else None
