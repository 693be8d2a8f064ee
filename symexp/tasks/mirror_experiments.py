"""Seed 004's experiments on mirror symmetry, each a batch of small independent models trained in one go:

* MirrorSparsityTask (Fig. 3 left): linear regression on a sparse target, vanilla theta = w against the
  rescaling-symmetric theta = u * v (DCS with P = 0 and P = I), over a grid of learning rates and weight
  decays, SGD with batch size 1; reports the share of coordinates exactly on the mirror.
* MirrorRankTask (Fig. 3 middle): a d x d regression with W = U V against the residual control
  W = (U + I)(V + I) (also (U + I) V and W itself), trained with minibatch SGD (state-dependent noise) over a
  grid of learning rates; reports ranks and directions on a mirror.
* MirrorEnsembleTask (Fig. 3 right): a wide two-layer student of a narrow teacher, with and without weight
  decay; reports hidden units that sit exactly on a permutation mirror (identical twins) and the correlation
  of their pre-activations.
* MirrorPlasticityTask (Fig. 4): continual linear regression with a new sparse target per task; vanilla,
  rescaling symmetry, and its two fixes (a fixed random offset that removes the symmetry, and noise).
Each writes one verdict line (``verdict/<experiment>``, symexp.tasks.mirror_verdicts) into results.json.
The data module is symexp.discovery.data.TickData (one dummy batch); a task's own draws follow its seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from symexp.figstyle import save as save_figure  # noqa: E402  (the shared style: 200 dpi PNG + PDF)
from symexp.figstyle import styled  # noqa: E402
from symexp.stats import median  # noqa: E402
from symexp.tasks.base import SymexpTask  # noqa: E402
from symexp.tasks.mirror_verdicts import (  # noqa: E402
    ensemble_verdict,
    plasticity_verdict,
    rank_verdict,
    sparsity_verdict,
)


class _InnerLoopTask(SymexpTask):
    """Runs `run_experiment` once inside a single Lightning step (manual optimisation)."""

    def __init__(self, model, datamodule, seeds: Sequence[int] = (0,), syre=None, budget: str = "unspecified") -> None:
        super().__init__(model, datamodule, seeds, syre)
        self.num_threads: int | None = 1  # small batched models: extra intra-op threads only contend
        self.automatic_optimization = False
        self.budget = f"budget={budget}"  # named in the verdict line beside the settings it ran at
        self.results: dict[str, torch.Tensor | str] = {}
        self.gen = torch.Generator().manual_seed(int(seeds[0]))

    def configure_optimizers(self):
        return self.attach_syre(torch.optim.SGD(self.model.parameters(), lr=0.0))

    def headline_metrics(self) -> tuple[str, ...]:
        return ("verdict/*", "mirror/sparsity_*_max", "mirror/diverged_*", "rank/*_min", "plasticity/*/last_task_loss",
                "sym/mirror*")

    def trainer_defaults(self) -> dict:
        return {"max_epochs": 1, "num_sanity_val_steps": 0, "limit_val_batches": 0, "log_every_n_steps": 1}

    def on_fit_start(self) -> None:
        if self.num_threads and self.device.type == "cpu":
            torch.set_num_threads(int(self.num_threads))

    def training_step(self, batch, batch_idx):
        with torch.enable_grad():
            self.run_experiment()
        return None

    def run_experiment(self) -> None:
        raise NotImplementedError

    def final_metrics(self) -> dict[str, torch.Tensor | list[str]]:
        """Numbers as (1,) tensors; the verdict lines as one-member lists of strings."""
        return {k: [v] if isinstance(v, str) else v.reshape(1).float() for k, v in self.results.items()}


def sparsity(theta: torch.Tensor, tol: float) -> torch.Tensor:
    """Share of coordinates with |theta_i| < tol per row; NaN for a diverged row (NaN < tol would read as dense)."""
    sp = (theta.abs() < tol).float().mean(-1)
    return torch.where(torch.isfinite(theta).all(-1), sp, torch.full_like(sp, float("nan")))


def _nanmax(x: torch.Tensor) -> torch.Tensor:
    finite = x[torch.isfinite(x)]
    return finite.max() if finite.numel() else x.new_tensor(float("nan"))


def _sgd_step(params: Sequence[torch.Tensor], loss: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor) -> None:
    """p <- p - lr (grad + wd p) with a learning rate and a weight decay per copy (row)."""
    grads = torch.autograd.grad(loss, list(params))
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= lr * (g + wd * p)


class MirrorSparsityTask(_InnerLoopTask):
    """Fig. 3 left through DCS (symexp/discovery/dcs.py): P = 0 is the vanilla regressor theta = w, P = I the
    rescaling-symmetric theta = u * v. Every grid point reports the share of coordinates exactly on the mirror
    (|O_i^T (u, v)| = sqrt(u_i^2 + v_i^2) < mirror_tol: absorbed, SGD cannot leave it); the vanilla model has
    no mirror, its analogue is |w_i| < mirror_tol. The target is sparse (``support``), so weight decay has
    coordinates to remove."""

    def __init__(self, model, datamodule, lrs: Sequence[float] = (0.001, 0.003, 0.01, 0.03),
                 weight_decays: Sequence[float] = (0.001, 0.01, 0.03, 0.1), dim: int = 50, n: int = 100,
                 steps: int = 20000, support: float = 0.2, noise: float = 0.5, mirror_tol: float = 1e-6,
                 tol: float = 1e-3, init_std: float = 0.1, budget: str = "unspecified", seeds: Sequence[int] = (0,),
                 syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre, budget)
        if not 0 < support <= 1:
            raise ValueError(f"task.support: the target's share of nonzero coordinates must be in (0, 1], got {support}")
        self.lrs, self.wds = list(lrs), list(weight_decays)
        self.dim, self.n, self.steps, self.support, self.noise = dim, n, steps, support, noise
        self.mirror_tol, self.tol, self.init_std = mirror_tol, tol, init_std

    def run_experiment(self) -> None:
        from symexp.discovery.dcs import DCS

        g, d = self.gen, self.dim
        x = torch.randn(self.n, d, generator=g)
        self.theta_star = torch.randn(d, generator=g) * (torch.rand(d, generator=g) < self.support)
        y = x @ self.theta_star + self.noise * torch.randn(self.n, generator=g)
        lr = torch.tensor(self.lrs).repeat_interleave(len(self.wds))[:, None]
        wd = torch.tensor(self.wds).repeat(len(self.lrs))[:, None]
        b = lr.shape[0]
        seed = int(torch.randint(0, 2**31, (1,), generator=g))
        plain = DCS(d, "zero", copies=b, init_std=self.init_std, seed=seed)
        sym = DCS(d, "identity", copies=b, init_std=self.init_std, seed=seed + 1)
        for _ in range(self.steps):
            i = torch.randint(0, self.n, (b,), generator=g)  # SGD, batch size 1, one sample per copy
            for model in (plain, sym):
                r = (x[i] * model.theta()).sum(-1) - y[i]
                _sgd_step([model.u, model.v, model.w], 0.5 * r.square().sum(), lr, wd)
        with torch.no_grad():
            self.theta_plain, self.theta_sym = plain.theta(), sym.theta()
            self.uv = (sym.u.detach().clone(), sym.v.detach().clone())
            constraint = torch.sqrt(sym.u.square() + sym.v.square())  # |O_i^T theta'| per coordinate
        finite_s, finite_p = torch.isfinite(constraint).all(-1), torch.isfinite(self.theta_plain).all(-1)
        nan = torch.tensor(float("nan"))
        on_sym = torch.where(finite_s, (constraint < self.mirror_tol).float().mean(-1), nan)
        on_plain = torch.where(finite_p, (self.theta_plain.abs() < self.mirror_tol).float().mean(-1), nan)
        zero = self.theta_star == 0
        on_zeros = torch.where(finite_s, (constraint[:, zero] < self.mirror_tol).float().mean(-1), nan)
        on_support = torch.where(finite_s, (constraint[:, ~zero] < self.mirror_tol).float().mean(-1), nan)
        tol_sym, tol_plain = sparsity(self.theta_sym, self.tol), sparsity(self.theta_plain, self.tol)
        self.constraint = constraint
        for k in range(b):
            tag = f"lr{float(lr[k]):g}_wd{float(wd[k]):g}"
            self.results[f"mirror/on_mirror_sym/{tag}"] = on_sym[k]
            self.results[f"mirror/on_mirror_plain/{tag}"] = on_plain[k]
            self.results[f"mirror/on_mirror_sym_true_zeros/{tag}"] = on_zeros[k]
            self.results[f"mirror/on_mirror_sym_support/{tag}"] = on_support[k]
            self.results[f"mirror/below_tol_sym/{tag}"] = tol_sym[k]
            self.results[f"mirror/below_tol_plain/{tag}"] = tol_plain[k]
        self.results["mirror/on_mirror_sym_max"] = _nanmax(on_sym)
        self.results["mirror/on_mirror_plain_max"] = _nanmax(on_plain)
        self.results["mirror/target_zeros"] = zero.float().mean()
        self.results["mirror/diverged_plain"] = (~finite_p).float().sum()
        self.results["mirror/diverged_sym"] = (~finite_s).float().sum()
        self.on = (on_plain.reshape(len(self.lrs), -1), on_sym.reshape(len(self.lrs), -1))
        self.results["verdict/sparsity"] = sparsity_verdict(
            self.on[1].tolist(), self.on[0].tolist(), self.lrs,
            f"{self.budget}: d={d}, n={self.n}, {self.steps} steps, weight decays {', '.join(f'{w:g}' for w in self.wds)}")

    def mirror_constraints(self) -> dict[str, torch.Tensor]:
        """Mean over the finite grid points of each run's median per-coordinate |O_i^T theta'| (the per-point
        shares exactly on the mirror are mirror/on_mirror_sym/<lr>_<wd>)."""
        per_run = median(self.constraint, -1)
        finite = per_run[torch.isfinite(per_run)]
        return {"rescaling": (finite.mean() if finite.numel() else per_run.new_tensor(float("nan"))).reshape(1)}

    @styled
    def figures(self, fig_dir: Path) -> dict[str, Path]:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
        titles = ("vanilla theta = w (no mirror: |w_i| < tol)", "rescaling symmetry theta = u * v (DCS, P = I)")
        for ax, on, title in zip(axes, self.on, titles):
            for j, wd in enumerate(self.wds):
                ax.plot(self.lrs, on[:, j], "o-", label=f"weight decay {wd:g}")
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.set_title(title, fontsize=8)
        axes[0].set_ylabel(f"share on the mirror (< {self.mirror_tol:g}); gaps: diverged")
        axes[1].legend(fontsize=7)
        return {"sparsity": save_figure(fig, fig_dir / "sparsity.png")}


# W = (U + a I)(V + b I) per factorised parametrisation: (a, b)
RANK_SHIFTS = {"factorized": (0.0, 0.0), "residual": (1.0, 1.0), "half_residual": (1.0, 0.0)}
RANK_MODELS = (*RANK_SHIFTS, "direct")


class MirrorRankTask(_InnerLoopTask):
    """Fig. 3 middle: a d x d linear regression y = W* x + noise trained online with SGD of batch size
    ``batch_size``, whose gradient noise is state-dependent (it vanishes on a mirror, so the mirror absorbs),
    over a grid of learning rates (the noise strength). Parametrisations of W:
      * factorized W = U V: the rotation symmetry, its mirrors through the origin (U n = 0 and V^T n = 0);
      * residual W = (U + I)(V + I): a residual connection around each layer, the paper's control (Fig. 3
        middle's inset). The rotation symmetry survives only as an affine one whose mirrors sit at
        (U + I) n = 0, V^T n = -n, away from the origin, where weight decay no longer pulls: the verdict
        rests on this control;
      * half_residual W = (U + I) V: a skip around one layer only (the other reading of the caption);
      * direct W (no factorisation, no mirror), for reference.
    Without weight decay a residual form is U V with a shifted initialisation (SGD is blind to the shift),
    so the contrast needs weight decay that acts within the budget (lr x weight_decay x steps of order 1).
    Reports the rank of W (singular values above rank_tol of the largest), for the factorisations the
    directions exactly on a mirror (singular values of [U + a I; (V + b I)^T] below mirror_tol), and
    ``verdict/rank`` (symexp.tasks.mirror_verdicts.rank_verdict)."""

    def __init__(self, model, datamodule, dim: int = 50, lrs: Sequence[float] = (0.001, 0.002, 0.003, 0.005, 0.007),
                 steps: int = 20000, batch_size: int = 1, weight_decay: float = 3e-2, label_noise: float = 1.0,
                 spectrum: Sequence[float] = (1.0, 1e-3), rank_tol: float = 1e-3, mirror_tol: float = 1e-6,
                 budget: str = "unspecified", seeds: Sequence[int] = (0,), syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre, budget)
        if batch_size < 1:
            raise ValueError(f"task.batch_size: must be positive, got {batch_size}")
        if len(spectrum) != 2 or not 0 < spectrum[1] <= spectrum[0]:
            raise ValueError(f"task.spectrum: [largest, smallest] singular value of W*, got {list(spectrum)}")
        if len(lrs) < 2 or list(lrs) != sorted(lrs):
            raise ValueError(f"task.lrs: need >= 2 learning rates in increasing order, got {list(lrs)}")
        self.dim, self.lrs, self.steps, self.batch_size = dim, list(lrs), steps, batch_size
        self.wd, self.label_noise, self.spectrum = weight_decay, label_noise, tuple(float(v) for v in spectrum)
        self.rank_tol, self.mirror_tol = rank_tol, mirror_tol

    def _target(self) -> torch.Tensor:
        g, d = self.gen, self.dim
        q1 = torch.linalg.qr(torch.randn(d, d, generator=g)).Q
        q2 = torch.linalg.qr(torch.randn(d, d, generator=g)).Q
        hi, lo = self.spectrum
        return q1 @ torch.diag(torch.logspace(math.log10(hi), math.log10(lo), d)) @ q2.T

    def run_experiment(self) -> None:
        g, d, bs = self.gen, self.dim, self.batch_size
        target = self._target()
        m, f = len(self.lrs), len(RANK_SHIFTS)
        lr = torch.tensor(self.lrs)[:, None, None]
        eye = torch.eye(d)
        u = torch.randn(f, m, d, d, generator=g) / d**0.5  # one (U, V) per factorised parametrisation and lr
        v = torch.randn(f, m, d, d, generator=g) / d**0.5
        w = torch.zeros(m, d, d)
        shift_u = torch.stack([a * eye for a, _ in RANK_SHIFTS.values()])[:, None]  # W = (U + shift_u)(V + shift_v)
        shift_v = torch.stack([b * eye for _, b in RANK_SHIFTS.values()])[:, None]
        with torch.no_grad():
            for _ in range(self.steps):
                x = torch.randn(f + 1, m, d, bs, generator=g)
                y = target @ x + self.label_noise * torch.randn(f + 1, m, d, bs, generator=g)
                a, b = u + shift_u, v + shift_v
                bx = b @ x[:f]
                r = (a @ bx - y[:f]) / bs  # gradient of the mean of 0.5 |W x - y|^2 over the batch
                gu = r @ bx.transpose(-1, -2)
                gv = a.transpose(-1, -2) @ r @ x[:f].transpose(-1, -2)
                u -= lr * (gu + self.wd * u)  # weight decay on the trained parts only, not on the identity
                v -= lr * (gv + self.wd * v)
                rw = (w @ x[f] - y[f]) / bs
                w -= lr * (rw @ x[f].transpose(-1, -2) + self.wd * w)
        a, b = u + shift_u, v + shift_v
        mats = {name: a[k] @ b[k] for k, name in enumerate(RANK_SHIFTS)} | {"direct": w}
        finite = {k: torch.isfinite(mat).flatten(1).all(-1) for k, mat in mats.items()}
        nan = torch.tensor(float("nan"))
        self.rank, self.on_mirror = {}, {}
        for name, mat in mats.items():
            sv = torch.linalg.svdvals(torch.nan_to_num(mat))
            rank = (sv > self.rank_tol * sv[:, :1]).sum(-1).float()
            self.rank[name] = torch.where(finite[name], rank, nan)
        for k, name in enumerate(RANK_SHIFTS):
            stacked = torch.cat([a[k], b[k].transpose(-1, -2)], -2)  # (m, 2d, d)
            sv = torch.linalg.svdvals(torch.nan_to_num(stacked))
            self.on_mirror[name] = torch.where(finite[name], (sv < self.mirror_tol).sum(-1).float(), nan)
            if name == "factorized":
                self.min_mirror_sv = sv[:, -1]
        for j, step_lr in enumerate(self.lrs):
            for name in RANK_MODELS:
                self.results[f"rank/{name}/lr{step_lr:g}"] = self.rank[name][j]
            for name in self.on_mirror:
                self.results[f"rank/on_mirror/{name}/lr{step_lr:g}"] = self.on_mirror[name][j]
        for name in RANK_MODELS:  # rank at the smallest lr minus the lowest rank on the grid (finite runs)
            finite_rank = self.rank[name][torch.isfinite(self.rank[name])]
            self.results[f"rank/{name}/drop"] = (finite_rank[0] - finite_rank.min()) if finite_rank.numel() else nan
            self.results[f"rank/{name}/diverged"] = (~finite[name]).float().sum()
        self.results["verdict/rank"] = rank_verdict(
            self.lrs, self.rank["factorized"].tolist(), self.rank["residual"].tolist(), d,
            f"{self.budget}: d={d}, {self.steps} steps, batch {bs}, weight decay {self.wd:g}")

    def mirror_constraints(self) -> dict[str, torch.Tensor]:
        # rotation mirrors: min over unit n of |(U n, V^T n)| = the smallest singular value of [U; V^T]; the
        # median over the learning rates (the per-lr counts of directions on a mirror are rank/on_mirror/*)
        finite = self.min_mirror_sv[torch.isfinite(self.min_mirror_sv)]
        return {"rotation": (median(finite) if finite.numel() else torch.tensor(float("nan"))).reshape(1)}

    @styled
    def figures(self, fig_dir: Path) -> dict[str, Path]:
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
        styles = {"factorized": ("o-", "W = U V (rotation mirror)"),
                  "residual": ("s-", "W = (U + I)(V + I) (residual connections: the control)"),
                  "half_residual": ("d--", "W = (U + I) V (one skip)"),
                  "direct": ("^:", "W trained directly (no mirror)")}
        for name, (style, label) in styles.items():
            ax.plot(self.lrs, self.rank[name], style, label=label)
        ax.set_xscale("log")
        ax.set_xlabel(f"learning rate (SGD, batch {self.batch_size}: noise grows with it)")
        ax.set_ylabel(f"rank of W (sv > {self.rank_tol:g} x largest)")
        ax.set_title(f"weight decay {self.wd:g}, {self.steps} steps", fontsize=8)
        ax.legend(fontsize=7)
        return {"rank": save_figure(fig, fig_dir / "rank.png")}


class MirrorEnsembleTask(_InnerLoopTask):
    """Fig. 3 right, at CPU scale: the paper trains ResNet18 on CIFAR-10 and finds the penultimate neurons
    grouped into homogeneous blocks under weight decay. Here a two-layer student (``hidden`` units) learns a
    narrow teacher (``teacher`` units) with minibatch SGD, one copy per weight decay. Swapping two hidden
    units is a mirror symmetry for any elementwise activation; its constraint O^T theta = 0 says the two
    units are identical (same incoming and outgoing weights), i.e. they form a homogeneous ensemble.
    Reports per weight decay: the share of live units with a twin (pre-activation correlation > corr_tol over
    the data), the number of such blocks, the share exactly on a permutation mirror (distance to the nearest
    other unit |theta_a - theta_b| / sqrt(2) < mirror_tol) and the median of that distance."""

    def __init__(self, model, datamodule, dim: int = 5, hidden: int = 16, teacher: int = 3, n: int = 200,
                 batch_size: int = 8, lr: float = 0.05, steps: int = 20000,
                 weight_decays: Sequence[float] = (0.0, 0.001, 0.01, 0.03), activation: str = "relu",
                 corr_tol: float = 0.999, mirror_tol: float = 1e-6, budget: str = "unspecified",
                 seeds: Sequence[int] = (0,), syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre, budget)
        if list(weight_decays) != sorted(weight_decays) or len(weight_decays) < 2:
            raise ValueError(f"task.weight_decays: need >= 2 values in increasing order (the first is the "
                             f"control), got {list(weight_decays)}")
        acts = {"relu": torch.relu, "tanh": torch.tanh}
        if activation not in acts:
            raise ValueError(f"task.activation: choose one of {sorted(acts)}, got {activation!r}")
        if hidden < 2 or teacher < 1:
            raise ValueError(f"task.hidden: need >= 2 student units and >= 1 teacher unit, got {hidden}, {teacher}")
        self.dim, self.hidden, self.teacher, self.n, self.batch_size = dim, hidden, teacher, n, batch_size
        self.lr, self.steps, self.wds, self.sigma = lr, steps, list(weight_decays), acts[activation]
        self.corr_tol, self.mirror_tol = corr_tol, mirror_tol

    def run_experiment(self) -> None:
        g, d, h, b = self.gen, self.dim, self.hidden, len(self.wds)
        x = torch.randn(self.n, d, generator=g)
        y = self.sigma(x @ torch.randn(self.teacher, d, generator=g).T) @ torch.randn(self.teacher, 1, generator=g)
        w_in = (torch.randn(b, h, d, generator=g) / d**0.5).requires_grad_(True)
        w_out = (torch.randn(b, 1, h, generator=g) / h**0.5).requires_grad_(True)
        wd = torch.tensor(self.wds)[:, None, None]
        for _ in range(self.steps):
            i = torch.randint(0, self.n, (b, self.batch_size), generator=g)
            pred = self.sigma(x[i] @ w_in.transpose(1, 2)) @ w_out.transpose(1, 2)
            loss = 0.5 * (pred - y[i]).square().mean((1, 2)).sum()
            _sgd_step([w_in, w_out], loss, self.lr, wd)
        with torch.no_grad():
            units = torch.cat([w_in, w_out.transpose(1, 2)], -1)  # (b, h, d + 1): each unit's weights
            self.pre = x @ w_in.transpose(1, 2)  # (b, n, h) pre-activations
            train = 0.5 * (self.sigma(self.pre) @ w_out.transpose(1, 2) - y).square().mean((1, 2))
        self.corr, self.nearest = [], []
        for k, decay in enumerate(self.wds):
            live = units[k].norm(dim=-1) > self.mirror_tol
            dist = torch.cdist(units[k], units[k]) / 2**0.5
            dist.fill_diagonal_(float("inf"))
            nearest = dist.min(-1).values  # distance to the nearest permutation mirror of each unit
            corr = torch.corrcoef(self.pre[k].T).nan_to_num(0.0)
            twin = (corr.abs() > self.corr_tol) & ~torch.eye(h, dtype=torch.bool) & live[:, None] & live[None]
            tag = f"wd{decay:g}"
            self.results[f"ensemble/twinned/{tag}"] = twin.any(-1)[live].float().mean()
            self.results[f"ensemble/blocks/{tag}"] = torch.tensor(float(_blocks(twin, live)))
            self.results[f"ensemble/on_mirror/{tag}"] = (nearest[live] < self.mirror_tol).float().mean()
            self.results[f"ensemble/nearest_mirror/{tag}"] = median(nearest[live])
            self.results[f"ensemble/live_units/{tag}"] = live.float().sum()
            self.results[f"ensemble/train_loss/{tag}"] = train[k]
            self.corr.append(corr)
            self.nearest.append(nearest)
        self.results["verdict/ensemble"] = ensemble_verdict(
            self.wds, [float(self.results[f"ensemble/twinned/wd{w:g}"]) for w in self.wds],
            f"{self.budget}: {h} hidden units, teacher {self.teacher}, {self.steps} steps, lr {self.lr:g}")

    def mirror_constraints(self) -> dict[str, torch.Tensor]:
        # permutation mirrors: median over units of the distance to the nearest twin, at the largest weight decay
        return {"permutation": median(self.nearest[-1]).reshape(1)}

    @styled
    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform

        fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.6))
        for ax, k in zip(axes, (0, len(self.wds) - 1)):
            corr = self.corr[k].numpy()
            dist = squareform((1 - abs(corr)).clip(0), checks=False)
            order = leaves_list(linkage(dist, "average"))
            im = ax.imshow(corr[order][:, order], cmap="RdBu_r", vmin=-1, vmax=1)
            ax.grid(False)  # the style's grid would cross the cells
            twinned = float(self.results[f"ensemble/twinned/wd{self.wds[k]:g}"])
            ax.set_title(f"weight decay {self.wds[k]:g}: {100 * twinned:.0f}% of units in a block", fontsize=8)
            ax.set_xlabel("hidden unit (clustered)")
            fig.colorbar(im, ax=ax, fraction=0.046, label="pre-activation correlation")
        axes[0].set_ylabel("hidden unit")
        return {"ensembles": save_figure(fig, fig_dir / "ensembles.png")}


def _blocks(twin: torch.Tensor, live: torch.Tensor) -> int:
    """Number of groups of two or more live units joined by twin links (connected components)."""
    from scipy.sparse.csgraph import connected_components

    idx = live.nonzero().flatten()
    if idx.numel() == 0:
        return 0
    sub = twin[idx][:, idx].numpy()
    _, labels = connected_components(sub, directed=False)
    return int(sum((labels == c).sum() >= 2 for c in set(labels.tolist())))


class MirrorPlasticityTask(_InnerLoopTask):
    VARIANTS = ("vanilla", "rescaling", "rescaling_offset", "rescaling_noise")

    def __init__(self, model, datamodule, dim: int = 20, n: int = 100, tasks: int = 10, steps_per_task: int = 2000,
                 lr: float = 0.02, weight_decay: float = 0.02, support: float = 0.5, offset_std: float = 0.3,
                 noise_std: float = 0.01, budget: str = "unspecified", seeds: Sequence[int] = (0,),
                 syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre, budget)
        self.dim, self.n, self.tasks, self.steps = dim, n, tasks, steps_per_task
        self.lr, self.wd, self.support, self.offset_std, self.noise_std = lr, weight_decay, support, offset_std, noise_std

    def run_experiment(self) -> None:
        g, d = self.gen, self.dim
        nv = len(self.VARIANTS)
        w = torch.randn(nv, d, generator=g) * 0.1
        u, v = torch.randn(nv, d, generator=g) * 0.1, torch.randn(nv, d, generator=g) * 0.1
        offset = torch.zeros(nv, 2, d)
        offset[2] = torch.randn(2, d, generator=g) * self.offset_std  # fix 1: fixed offset removes the mirror
        noise = torch.zeros(nv, 1)
        noise[3] = self.noise_std  # fix 2: noise leaves the absorbing state
        self.curve = torch.zeros(self.tasks, nv)
        for t in range(self.tasks):
            x = torch.randn(self.n, d, generator=g)
            theta_star = torch.randn(d, generator=g) * (torch.rand(d, generator=g) < self.support)
            y = x @ theta_star
            for _ in range(self.steps):
                i = torch.randint(0, self.n, (1,), generator=g)
                xi, yi = x[i], y[i]
                a, b = u + offset[:, 0], v + offset[:, 1]
                theta = torch.where(torch.arange(nv)[:, None] == 0, w, a * b)
                r = (theta * xi).sum(-1) - yi
                w = w - self.lr * (r[:, None] * xi + self.wd * w)
                gu, gv = r[:, None] * xi * b + self.wd * u, r[:, None] * xi * a + self.wd * v
                u = u - self.lr * gu + noise * torch.randn(u.shape, generator=g)
                v = v - self.lr * gv + noise * torch.randn(v.shape, generator=g)
            a, b = u + offset[:, 0], v + offset[:, 1]
            theta = torch.where(torch.arange(nv)[:, None] == 0, w, a * b)
            self.curve[t] = ((x @ theta.T - y[:, None]).square().mean(0)) / y.square().mean()
        self.uv = (u, v)
        for k, name in enumerate(self.VARIANTS):
            self.results[f"plasticity/{name}/last_task_loss"] = self.curve[-1, k]
            self.results[f"plasticity/{name}/first_task_loss"] = self.curve[0, k]
        self.results["verdict/plasticity"] = plasticity_verdict(
            {n: float(self.curve[0, k]) for k, n in enumerate(self.VARIANTS)},
            {n: float(self.curve[-1, k]) for k, n in enumerate(self.VARIANTS)},
            f"{self.budget}: {self.tasks} tasks x {self.steps} steps, d={d}, lr {self.lr:g}, weight decay {self.wd:g}")

    def mirror_constraints(self) -> dict[str, torch.Tensor]:
        u, v = self.uv
        return {"rescaling": torch.sqrt(u[1].square() + v[1].square()).mean().reshape(1)}

    @styled
    def figures(self, fig_dir: Path) -> dict[str, Path]:
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        for k, name in enumerate(self.VARIANTS):
            ax.plot(range(1, self.tasks + 1), self.curve[:, k], "o-" if k else "o--", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("task")
        ax.set_ylabel("relative training loss at task end")
        ax.legend(fontsize=7)
        return {"plasticity": save_figure(fig, fig_dir / "plasticity.png")}

