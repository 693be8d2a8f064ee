"""Datamodules: random (theta, X, Y) samples for generator learning, and a one-batch loader for tasks
that run their own inner loops (the mirror experiments)."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from symexp.data.sampling import EpochShuffle, quiet_generator
from symexp.discovery.targets import TargetNet, build_target


class GeneratorData(L.LightningDataModule):
    """n_train random samples (theta ~ N(0, theta_std^2), X ~ N(0, 1), Y ~ N(0, 1)) of a target network
    (seed 003 uses 10000); a separate evaluation set of n_eval samples."""

    def __init__(
        self,
        target: dict,
        n_train: int = 10_000,
        n_eval: int = 512,
        batch_size: int = 128,
        theta_std: float = 1.0,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if n_train < 1 or n_eval < 1 or batch_size < 1:
            raise ValueError("data.n_train: n_train, n_eval and batch_size must be positive")
        self.target: TargetNet = build_target(**dict(target))
        self.n_train, self.n_eval, self.batch_size = n_train, n_eval, batch_size
        gen = torch.Generator().manual_seed(int(seeds[0]) + 12345)
        self.train_set = self._draw(n_train, theta_std, gen)
        self.eval_set = self._draw(n_eval, theta_std, gen)
        self.seed = int(seeds[0])

    def _draw(self, n: int, std: float, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        t = self.target
        theta = torch.randn(n, t.n_params, generator=gen) * std
        return theta, torch.randn(n, *t.x_shape, generator=gen), torch.randn(n, *t.y_shape, generator=gen)

    def train_dataloader(self) -> DataLoader:
        order = EpochShuffle(len(self.train_set[0]), self.seed)
        return DataLoader(TensorDataset(*self.train_set), batch_size=self.batch_size, sampler=order, drop_last=True, generator=quiet_generator())


class _Ticks(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i)


class TickData(L.LightningDataModule):
    """``ticks`` dummy batches per epoch; the task draws its own data (mirror experiments). The experiment's
    data settings live here so the data group still selects them."""

    def __init__(self, ticks: int = 1, seeds: Sequence[int] = (0,), **settings) -> None:
        super().__init__()
        self.ticks, self.settings, self.seed = ticks, settings, int(seeds[0])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Ticks(self.ticks), batch_size=None, generator=quiet_generator())
