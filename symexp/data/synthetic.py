"""Synthetic data of seed 002's controlled experiments, ensemble-native: member k draws its own data
from seeds[k] (stream "data"), as (K, N, ...) tensors the task indexes directly."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from symexp.data.sampling import quiet_generator
from symexp.seeding import generator


class _Arrays(L.LightningDataModule):
    """Lightning only counts chunks; the task owns the arrays."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks_per_epoch = 1
        self.x_train = self.y_train = self.x_val = self.y_val = None

    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(self.chunks_per_epoch), batch_size=None, shuffle=False, generator=quiet_generator())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(range(1), batch_size=None, generator=quiet_generator())

    @property
    def n_train(self) -> int:
        return 0 if self.x_train is None else self.x_train.shape[1]


class NoData(_Arrays):
    """For objectives of the parameters alone (the symmetry benchmark)."""

    def __init__(self, seeds: Sequence[int] = (0,)) -> None:
        super().__init__()


class LinearTeacherData(_Arrays):
    """x ~ N(0, I_dim), y = x^T beta + noise * N(0, 1), beta ~ N(0, teacher_scale^2 / dim) per member
    (sparsity > 0 zeroes that fraction of beta)."""

    def __init__(self, dim: int, n_train: int, n_val: int = 1000, noise: float = 0.0, teacher_scale: float = 1.0,
                 sparsity: float = 0.0, seeds: Sequence[int] = (0,)) -> None:
        super().__init__()
        if dim <= 0 or n_train <= 0 or n_val <= 0:
            raise ValueError(f"data.dim/n_train/n_val: must be positive, got {dim}, {n_train}, {n_val}")
        self.dim = dim
        xs, ys, xv, yv, betas = [], [], [], [], []
        for s in seeds:
            g = generator(s, "data")
            beta = torch.randn(dim, generator=g) * teacher_scale / dim**0.5
            beta = beta * (torch.rand(dim, generator=g) >= sparsity)
            for xl, yl, n in ((xs, ys, n_train), (xv, yv, n_val)):
                x = torch.randn(n, dim, generator=g)
                xl.append(x)
                yl.append(x @ beta + noise * torch.randn(n, generator=g))
            betas.append(beta)
        self.x_train, self.y_train = torch.stack(xs), torch.stack(ys)
        self.x_val, self.y_val = torch.stack(xv), torch.stack(yv)
        self.beta = torch.stack(betas)


class TeacherStudentData(_Arrays):
    """Seed 002 appendix B.1: a random two-layer tanh teacher (dim -> hidden -> classes); inputs standard
    Gaussian; labels = argmax of the teacher's output. label_noise: that fraction of training labels
    replaced by uniform random classes; input_noise: std of Gaussian noise added to training inputs."""

    def __init__(self, dim: int, n_train: int = 10_000, n_val: int = 1000, hidden: int = 300, classes: int = 10,
                 label_noise: float = 0.0, input_noise: float = 0.0, seeds: Sequence[int] = (0,)) -> None:
        super().__init__()
        if not 0 <= label_noise <= 1 or input_noise < 0:
            raise ValueError(f"data.label_noise/input_noise: need 0<=label_noise<=1, input_noise>=0 "
                             f"(got {label_noise}, {input_noise})")
        self.dim, self.classes = dim, classes
        xs, ys, xv, yv = [], [], [], []
        for s in seeds:
            g = generator(s, "data")
            w1 = torch.randn(hidden, dim, generator=g) / dim**0.5
            w2 = torch.randn(classes, hidden, generator=g) / hidden**0.5

            def teacher(x, w1=w1, w2=w2):
                return torch.tanh(x @ w1.T) @ w2.T

            x, x_val = torch.randn(n_train, dim, generator=g), torch.randn(n_val, dim, generator=g)
            y = teacher(x).argmax(-1)
            flip = torch.rand(n_train, generator=g) < label_noise
            y = torch.where(flip, torch.randint(classes, (n_train,), generator=g), y)
            xs.append(x + input_noise * torch.randn(n_train, dim, generator=g))
            ys.append(y)
            xv.append(x_val)
            yv.append(teacher(x_val).argmax(-1))
        self.x_train, self.y_train = torch.stack(xs), torch.stack(ys)
        self.x_val, self.y_val = torch.stack(xv), torch.stack(yv)
