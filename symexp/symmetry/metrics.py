"""Metric adapters: each pulls its inputs from a task and calls the pure functions.

A metric is called as ``metric(task, computed)`` and returns {key: (K,) tensor or list of K strings};
``computed`` holds what earlier metrics (and the task's own final metrics) returned, so e.g. the regime
can read test MSE and partial defect. ``every_n_epochs`` > 0 also logs it as a curve during training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from symexp.data.transforms import transform
from symexp.stats import median
from symexp.symmetry.bounds import mirror_assignment, prop1_terms
from symexp.symmetry.defects import (
    active_partials,
    masked_median_max,
    partial_defects,
    pooled_defect,
    relative_defect,
)
from symexp.symmetry.mirror import (
    mirror_correlation,
    mirror_correlation_centred,
    mirror_mismatch,
    mirror_null,
    nearest_mirrors,
)
from symexp.symmetry.regime import DEFAULTS, classify

Result = dict[str, "torch.Tensor | list[str]"]


class Metric:
    """Base class: subclasses implement __call__."""

    final_only = False  # True: needs the other metrics (runs last, never as a curve)

    def __init__(self, every_n_epochs: int = 0) -> None:
        self.every_n_epochs = every_n_epochs

    def __call__(self, task, computed: Result) -> Result:
        raise NotImplementedError


def _grid_and_transforms(task, names: Sequence[str] | None):
    dm = task.datamodule
    grid = dm.grid.to(task.device)
    chosen = list(names) if names else list(dm.transform_names)
    return grid, {n: transform(n, dm.dim, key="metric.*.transforms") for n in chosen}


def _expand(grid: torch.Tensor, members: int) -> torch.Tensor:
    return grid.expand(members, -1, -1)


def _with_per_transform(prefix: str, per_t: dict[str, torch.Tensor]) -> Result:
    """The main key is the worst transform; per-transform keys appear only when there are several."""
    out: Result = {prefix: torch.stack(list(per_t.values())).amax(0)}
    if len(per_t) > 1:
        out.update({f"{prefix}/{name}": v for name, v in per_t.items()})
    return out


class OutputDefect(Metric):
    """sym/output_defect: D_out(T) of seed 000 on the symmetric evaluation grid."""

    def __init__(self, transforms: Sequence[str] | None = None, eps: float = 1e-12, every_n_epochs: int = 0):
        super().__init__(every_n_epochs)
        self.transforms, self.eps = transforms, eps

    @torch.no_grad()
    def __call__(self, task, computed):
        grid, ts = _grid_and_transforms(task, self.transforms)
        f = task.model(_expand(grid, task.members))
        per_t = {n: relative_defect(f, task.model(_expand(t(grid), task.members)), self.eps) for n, t in ts.items()}
        return _with_per_transform("sym/output_defect", per_t)


class PartialDefect(Metric):
    """sym/partial_defect: median over the active partials of the last hidden block; beside it the max,
    the pooled defect (sym/partial_defect_pooled: the active partials as one vector function) and the
    number of active partials, and all of them per block (sym/partial_defect/block<l>,
    sym/partial_defect_pooled/block<l>, sym/active_partials/block<l>). Blocks are numbered from 1, or
    by the model's ``partial_blocks`` (the hidden layers it reads) when it has them."""

    def __init__(
        self,
        tau: float = 1e-3,
        transforms: Sequence[str] | None = None,
        eps: float = 1e-12,
        every_n_epochs: int = 0,
    ):
        super().__init__(every_n_epochs)
        if tau < 0:
            raise ValueError(f"metric.partial_defect.tau: must be non-negative, got {tau}")
        self.tau, self.transforms, self.eps = tau, transforms, eps

    @torch.no_grad()
    def __call__(self, task, computed):
        grid, ts = _grid_and_transforms(task, self.transforms)
        _, parts = task.model(_expand(grid, task.members), return_partials=True)
        if not parts:
            nan = torch.full((task.members,), math.nan)
            return {"sym/partial_defect": nan, "sym/partial_defect_max": nan, "sym/partial_defect_pooled": nan}
        names = list(getattr(task.model, "partial_blocks", None) or range(1, len(parts) + 1))
        blocks_t = {n: task.model(_expand(t(grid), task.members), return_partials=True)[1] for n, t in ts.items()}
        out: Result = {}
        for l, p in enumerate(parts):
            active = active_partials(p, self.tau)
            d = torch.stack([partial_defects(p, blocks_t[n][l], self.eps) for n in ts]).amax(0)
            pooled = torch.stack([pooled_defect(p, blocks_t[n][l], active, self.eps) for n in ts]).amax(0)
            med, mx = masked_median_max(d, active)
            count = active.sum(-1).float()
            block = names[l]
            out[f"sym/partial_defect/block{block}"] = med
            out[f"sym/partial_defect_pooled/block{block}"] = pooled
            out[f"sym/active_partials/block{block}"] = count
            if l == len(parts) - 1:
                out["sym/partial_defect"], out["sym/partial_defect_max"] = med, mx
                out["sym/partial_defect_pooled"], out["sym/active_partials"] = pooled, count
        return out


class MirrorPairs(Metric):
    """sym/mirror_mismatch, sym/mirror_corr, sym/mirror_corr_centred, sym/mirror_distance: nearest-mirror
    diagnostics of the first-layer atoms and their outgoing coefficients, each beside its null level
    (``*_null``: the same statistic for random pairings of the atoms)."""

    @torch.no_grad()
    def __call__(self, task, computed):
        a, b, c = task.model.first_layer()
        idx, dist = nearest_mirrors(a, b)
        null = mirror_null(c)
        return {
            "sym/mirror_mismatch": mirror_mismatch(c, idx),
            "sym/mirror_mismatch_null": null["mismatch"],
            "sym/mirror_corr": mirror_correlation(c, idx),
            "sym/mirror_corr_null": null["corr"],
            "sym/mirror_corr_centred": mirror_correlation_centred(c, idx),
            "sym/mirror_corr_centred_null": null["corr_centred"],
            "sym/mirror_distance": median(dist, -1),
        }


class Prop1Bound(Metric):
    """Proposition 1 checked on the trained first block: the bound, the observed first-bottleneck defect
    max_x |p(x) - p(-x)| and whether the bound holds everywhere on the grid (sym/prop1_holds = 1)."""

    def __init__(self, every_n_epochs: int = 0, tolerance: float = 1e-5) -> None:
        super().__init__(every_n_epochs)
        self.tolerance = tolerance

    @torch.no_grad()
    def __call__(self, task, computed):
        grid = task.datamodule.grid.to(task.device)
        a, b, c = task.model.first_layer()
        bounds, observed, holds = [], [], []
        for k in range(task.members):
            perm = mirror_assignment(a[k], b[k])
            bnd, obs = prop1_terms(a[k], b[k], c[k], perm, grid, task.model.act)
            bounds.append(bnd.max())
            observed.append(obs.max())
            holds.append(((obs <= bnd * (1 + self.tolerance) + self.tolerance).all()).float())
        return {
            "sym/prop1_bound": torch.stack(bounds),
            "sym/prop1_observed": torch.stack(observed),
            "sym/prop1_holds": torch.stack(holds),
        }


class Regime(Metric):
    """regime: partial-symmetric | output-only | intermediate | underfit | diverged, per member; beside it
    the target's variance on the grid (data/target_var) and test/r2, from which the report can recompute
    the regime with other thresholds without retraining."""

    final_only = True

    def __init__(
        self,
        r2_min: float = DEFAULTS["r2_min"],
        partial_low: float = DEFAULTS["partial_low"],
        partial_high: float = DEFAULTS["partial_high"],
    ) -> None:
        super().__init__(0)
        if not r2_min <= 1:
            raise ValueError(f"metric.regime.r2_min: must be at most 1 (R^2 of a perfect fit), got {r2_min}")
        for key, v in (("partial_low", partial_low), ("partial_high", partial_high)):
            if v < 0:
                raise ValueError(f"metric.regime.{key}: must be non-negative, got {v}")
        if partial_low > partial_high:
            raise ValueError("metric.regime.partial_low: must not exceed metric.regime.partial_high")
        self.r2_min, self.partial_low, self.partial_high = r2_min, partial_low, partial_high

    def __call__(self, task, computed):
        mse = computed["test/mse"].tolist()
        pd = computed.get("sym/partial_defect", torch.full((task.members,), math.nan)).tolist()
        var = float(task.datamodule.y_grid.double().var(unbiased=False))
        status = task.member_status()
        return {
            "data/target_var": torch.full((task.members,), var),
            "test/r2": torch.tensor([1.0 - m / var for m in mse]),
            "regime": [
                classify(m, p, var, s, self.r2_min, self.partial_low, self.partial_high)
                for m, p, s in zip(mse, pd, status)
            ],
        }
