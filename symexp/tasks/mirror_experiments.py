"""Seed 004's experiments on mirror symmetry, each a batch of small independent models trained in one go:

* MirrorSparsityTask (Fig. 3 left): linear regression, vanilla theta = w against the rescaling-symmetric
  theta = u * w (DCS with P = I), over a grid of learning rates and weight decays, SGD with batch size 1;
  reports the sparsity of the solutions.
* MirrorRankTask (Fig. 3 middle): matrix factorisation W = U V (d x d) under Gaussian gradient noise of
  several strengths; with ``residual`` W = (U + I) V, which removes the rotation symmetry; reports ranks.
* MirrorPlasticityTask (Fig. 4): continual linear regression with a new sparse target per task; vanilla,
  rescaling symmetry, and its two fixes (a fixed random offset that removes the symmetry, and noise).
The data module is symexp.discovery.data.TickData (one dummy batch); a task's own draws follow its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from symexp.plots import save_figure  # noqa: E402
from symexp.tasks.base import SymexpTask  # noqa: E402


class _InnerLoopTask(SymexpTask):
    """Runs `run_experiment` once inside a single Lightning step (manual optimisation)."""

    def __init__(self, model, datamodule, seeds: Sequence[int] = (0,), syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre)
        self.num_threads: int | None = 1  # small batched models: extra intra-op threads only contend
        self.automatic_optimization = False
        self.results: dict[str, torch.Tensor] = {}
        self.gen = torch.Generator().manual_seed(int(seeds[0]))

    def configure_optimizers(self):
        return self.attach_syre(torch.optim.SGD(self.model.parameters(), lr=0.0))

    def headline_metrics(self) -> tuple[str, ...]:
        return ("mirror/sparsity_*_max", "mirror/diverged_*", "rank/*_min", "plasticity/*/last_task_loss",
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

    def final_metrics(self) -> dict[str, torch.Tensor]:
        return {k: v.reshape(1).float() for k, v in self.results.items()}


def sparsity(theta: torch.Tensor, tol: float) -> torch.Tensor:
    """Share of coordinates with |theta_i| < tol per row; NaN for a diverged row (NaN < tol would read as dense)."""
    sp = (theta.abs() < tol).float().mean(-1)
    return torch.where(torch.isfinite(theta).all(-1), sp, torch.full_like(sp, float("nan")))


def _nanmax(x: torch.Tensor) -> torch.Tensor:
    finite = x[torch.isfinite(x)]
    return finite.max() if finite.numel() else x.new_tensor(float("nan"))


class MirrorSparsityTask(_InnerLoopTask):
    def __init__(self, model, datamodule, lrs: Sequence[float] = (0.001, 0.003, 0.01, 0.03),
                 weight_decays: Sequence[float] = (0.001, 0.01), dim: int = 50, n: int = 100, steps: int = 20000,
                 tol: float = 1e-3, noise: float = 0.5, seeds: Sequence[int] = (0,), syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre)
        self.lrs, self.wds = list(lrs), list(weight_decays)
        self.dim, self.n, self.steps, self.tol, self.noise = dim, n, steps, tol, noise

    def run_experiment(self) -> None:
        g, d = self.gen, self.dim
        x = torch.randn(self.n, d, generator=g)
        y = x @ (torch.randn(d, generator=g) * 0.3) + self.noise * torch.randn(self.n, generator=g)
        lr = torch.tensor(self.lrs).repeat_interleave(len(self.wds))[:, None]
        wd = torch.tensor(self.wds).repeat(len(self.lrs))[:, None]
        b = lr.shape[0]
        w = torch.randn(b, d, generator=g) * 0.1
        u, v = torch.randn(b, d, generator=g) * 0.1, torch.randn(b, d, generator=g) * 0.1
        for _ in range(self.steps):
            i = torch.randint(0, self.n, (b,), generator=g)
            xi, yi = x[i], y[i]
            r_w = (xi * w).sum(-1) - yi  # vanilla: theta = w
            w = w - lr * (r_w[:, None] * xi + wd * w)
            r_s = (xi * u * v).sum(-1) - yi  # rescaling symmetry: theta = u * v
            gu, gv = r_s[:, None] * xi * v + wd * u, r_s[:, None] * xi * u + wd * v
            u, v = u - lr * gu, v - lr * gv
        self.theta_plain, self.theta_sym, self.uv = w, u * v, (u, v)
        sp_plain, sp_sym = sparsity(w, self.tol), sparsity(u * v, self.tol)
        for k in range(b):
            tag = f"lr{float(lr[k]):g}_wd{float(wd[k]):g}"
            self.results[f"mirror/sparsity_plain/{tag}"] = sp_plain[k]
            self.results[f"mirror/sparsity_sym/{tag}"] = sp_sym[k]
        self.results["mirror/sparsity_sym_max"] = _nanmax(sp_sym)
        self.results["mirror/sparsity_plain_max"] = _nanmax(sp_plain)
        self.results["mirror/diverged_plain"] = sp_plain.isnan().float().sum()
        self.results["mirror/diverged_sym"] = sp_sym.isnan().float().sum()
        self.sp = (sp_plain.reshape(len(self.lrs), -1), sp_sym.reshape(len(self.lrs), -1))

    def mirror_constraints(self) -> dict[str, torch.Tensor]:
        u, v = self.uv
        per_run = torch.sqrt(u.square() + v.square()).mean(-1)
        finite = per_run[torch.isfinite(per_run)]  # diverged runs have no constraint to report
        return {"rescaling": (finite.min() if finite.numel() else per_run.new_tensor(float("nan"))).reshape(1)}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
        for ax, sp, title in zip(axes, self.sp, ("vanilla theta = w", "rescaling symmetry theta = u * w")):
            for j, wd in enumerate(self.wds):
                ax.plot(self.lrs, sp[:, j], "o-", label=f"weight decay {wd:g}")
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.set_title(title, fontsize=9)
        axes[0].set_ylabel(f"sparsity (|theta_i| < {self.tol:g}); gaps: diverged")
        axes[1].legend(fontsize=7)
        return {"sparsity": save_figure(fig, fig_dir / "sparsity.png")}


class MirrorRankTask(_InnerLoopTask):
    def __init__(self, model, datamodule, dim: int = 200, noises: Sequence[float] = (0.0, 0.01, 0.03, 0.1),
                 steps: int = 3000, lr: float = 0.1, weight_decay: float = 1e-3, rank_tol: float = 1e-2,
                 seeds: Sequence[int] = (0,), syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre)
        self.dim, self.noises, self.steps, self.lr, self.wd, self.rank_tol = dim, list(noises), steps, lr, weight_decay, rank_tol

    def _train(self, residual: bool) -> tuple[torch.Tensor, torch.Tensor]:
        g, d = self.gen, self.dim
        target = torch.randn(d, d, generator=g) / d**0.5
        b = len(self.noises)
        s = torch.tensor(self.noises)[:, None, None]
        u = (torch.randn(b, d, d, generator=g) / d**0.5).requires_grad_(True)
        v = (torch.randn(b, d, d, generator=g) / d**0.5).requires_grad_(True)
        eye = torch.eye(d)
        for _ in range(self.steps):
            w = (u + eye) @ v if residual else u @ v
            loss = (w - target).square().sum((-1, -2)).sum() / d
            gu, gv = torch.autograd.grad(loss, (u, v))
            with torch.no_grad():
                u -= self.lr * (gu + self.wd * u + s * torch.randn(u.shape, generator=g))
                v -= self.lr * (gv + self.wd * v + s * torch.randn(v.shape, generator=g))
        with torch.no_grad():
            w = (u + eye) @ v if residual else u @ v
            sv = torch.linalg.svdvals(w)
            rank = (sv > self.rank_tol * sv[:, :1]).sum(-1).float()
        return rank, torch.linalg.svdvals(torch.cat([u, v.transpose(1, 2)], 1)).detach()

    def run_experiment(self) -> None:
        self.rank_plain, sv = self._train(residual=False)
        self.rank_res, _ = self._train(residual=True)
        self.sv = sv
        for k, s in enumerate(self.noises):
            self.results[f"rank/plain/noise{s:g}"] = self.rank_plain[k]
            self.results[f"rank/residual/noise{s:g}"] = self.rank_res[k]
        self.results["rank/plain_min"] = self.rank_plain.min()
        self.results["rank/residual_min"] = self.rank_res.min()

    def mirror_constraints(self) -> dict[str, torch.Tensor]:
        # rotation mirrors: min over unit n of |(U n, V^T n)| = the smallest singular value of [U; V^T]
        return {"rotation": self.sv[:, -1].min().reshape(1)}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        x = [max(s, 1e-4) for s in self.noises]
        ax.plot(x, self.rank_plain, "o-", label="W = U V (rotation symmetry)")
        ax.plot(x, self.rank_res, "s--", label="W = (U + I) V (no symmetry)")
        ax.set_xscale("log")
        ax.set_xlabel("gradient noise std (0 drawn at 1e-4)")
        ax.set_ylabel("rank of W")
        ax.legend(fontsize=7)
        return {"rank": save_figure(fig, fig_dir / "rank.png")}


class MirrorPlasticityTask(_InnerLoopTask):
    VARIANTS = ("vanilla", "rescaling", "rescaling_offset", "rescaling_noise")

    def __init__(self, model, datamodule, dim: int = 20, n: int = 100, tasks: int = 10, steps_per_task: int = 2000,
                 lr: float = 0.02, weight_decay: float = 0.02, support: float = 0.5, offset_std: float = 0.3,
                 noise_std: float = 0.01, seeds: Sequence[int] = (0,), syre=None) -> None:
        super().__init__(model, datamodule, seeds, syre)
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

    def mirror_constraints(self) -> dict[str, torch.Tensor]:
        u, v = self.uv
        return {"rescaling": torch.sqrt(u[1].square() + v[1].square()).mean().reshape(1)}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        for k, name in enumerate(self.VARIANTS):
            ax.plot(range(1, self.tasks + 1), self.curve[:, k], "o-" if k else "o--", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("task")
        ax.set_ylabel("relative training loss at task end")
        ax.legend(fontsize=7)
        return {"plasticity": save_figure(fig, fig_dir / "plasticity.png")}

