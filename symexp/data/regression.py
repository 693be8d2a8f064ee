"""Datamodule of the RF-LR study: per-member unpaired training sets, a held-out validation set that
selects the best checkpoint, and a separate symmetric evaluation grid used only for the metrics.

Data stay on the model's device as (K, N, d) tensors; the task indexes them itself, one point per member
per optimizer step, so Lightning's loaders only count chunks of steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from symexp.data.sampling import mean_nearest_mirror_distance, quiet_generator, sample, symmetric_grid
from symexp.data.targets import Target
from symexp.data.transforms import Transform, transform
from symexp.seeding import generator


def grid_points_per_axis(dim: int, grid_points: int) -> int:
    """Points per axis of the symmetric evaluation grid: a 1D grid gets at least 2001 (it is cheap, and
    high-frequency cosines need it)."""
    return grid_points if dim > 1 else max(grid_points, 2001)


def grid_target_variance(data_cfg: Mapping) -> float:
    """Var(target) over the symmetric grid a stored data config builds: the denominator of R^2 for runs
    saved before data/target_var was recorded (the report recomputes their regimes without retraining)."""
    from hydra.utils import instantiate

    dim = int(data_cfg["dim"])
    grid = symmetric_grid(dim, grid_points_per_axis(dim, int(data_cfg.get("grid_points", 101))))
    return float(instantiate(dict(data_cfg["target"]))(grid).double().var(unbiased=False))


class SymmetricRegressionData(L.LightningDataModule):
    """Samples from a symmetric target; see the data/ configs for the knobs."""

    def __init__(
        self,
        target: Target,
        dim: int,
        n_train: int = 128,
        n_val: int = 256,
        sampling: str = "uniform",
        flip_prob: float = 0.15,
        sample_seed: int | None = None,
        noise_std: float = 0.0,
        grid_points: int = 101,
        transforms: Sequence[str] = ("neg",),
        label: str = "",
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if n_train <= 0:
            raise ValueError(f"data.n_train: must be positive, got {n_train}")
        if n_val <= 0:
            raise ValueError(f"data.n_val: must be positive, got {n_val}")
        if target.dim != dim:
            raise ValueError(f"data.dim: {dim} disagrees with the target's dimension {target.dim}")
        self.target, self.dim, self.seeds, self.label = target, dim, list(seeds), label
        self.transform_names = list(transforms)
        self.transforms: dict[str, Transform] = {}
        for name in self.transform_names:
            fn = transform(name, dim)
            if name not in target.symmetries:
                raise ValueError(
                    f"data.transforms: {name!r} is not a symmetry of {type(target).__name__} "
                    f"(it has {list(target.symmetries)})"
                )
            self.transforms[name] = fn
        self.n_train, self.n_val = n_train, n_val
        data_seeds = [sample_seed] * len(self.seeds) if sample_seed is not None else self.seeds

        def draw(stream: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
            xs, ys = [], []
            for s in data_seeds:
                g = generator(s, stream)
                x = sample(sampling, n, dim, g, flip_prob)
                y = target(x)
                if noise_std > 0:
                    y = y + noise_std * torch.randn(n, generator=g)
                xs.append(x)
                ys.append(y)
            return torch.stack(xs), torch.stack(ys)

        self.x_train, self.y_train = draw("data", n_train)
        self.x_val, self.y_val = draw("val", n_val)
        # fresh points from the training distribution (never used for selection): test/mse_indist, which
        # differs from the grid's test/mse when training is biased (data.sampling=positive_bias)
        self.x_test, self.y_test = draw("test", n_val)
        self.grid = symmetric_grid(dim, grid_points_per_axis(dim, grid_points))
        self.y_grid = target(self.grid)
        self.mirror_distance = mean_nearest_mirror_distance(self.x_train)  # (K,)
        self.chunks_per_epoch = 1

    # Lightning only counts chunks; the task owns indexing so the hot loop never touches a DataLoader.
    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(self.chunks_per_epoch), batch_size=None, shuffle=False, generator=quiet_generator())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(range(1), batch_size=None, generator=quiet_generator())
