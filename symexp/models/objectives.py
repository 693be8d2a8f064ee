"""Ensemble models of seed 002's controlled experiments, each with ``loss(x, y) -> (K,)`` for
task=objective. Parameters live in ParameterLists (stacked over members), so syre selects them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.seeding import generator
from symexp.stats import median
from symexp.symmetry import rank as R


def _stack(seeds: Sequence[int], stream: str, fn) -> torch.Tensor:
    return torch.stack([fn(generator(s, stream)) for s in seeds])


class SymmetryBenchmark(nn.Module):
    """l(w) = (w^T w)^2 - w^T B w (seed 002 section 6.2). B unstructured = (G + G^T) * b_scale with G
    Gaussian, or structured = diag(v) * b_scale with v Gaussian; its eigenvectors v_i define the
    reflections P_i w = w - 2 (v_i^T w) v_i. dropout: inverted dropout on w while training."""

    def __init__(self, dim: int = 1000, structure: str = "unstructured", b_scale: float = 1.0, init_std: float = 1.0,
                 dropout: float = 0.0, c_th: float | None = None, seeds: Sequence[int] = (0,)) -> None:
        super().__init__()
        if structure not in ("structured", "unstructured"):
            raise ValueError(f"model.structure: {structure!r} is not structured or unstructured")
        if not 0 <= dropout < 1:
            raise ValueError(f"model.dropout: must be in [0, 1), got {dropout}")
        self.members, self.dim, self.structure, self.dropout = len(seeds), dim, structure, dropout
        self.c_th = c_th if c_th is not None else (1e-1 if structure == "structured" else 1e-3)

        def draw_b(g):
            if structure == "structured":
                return torch.randn(dim, generator=g) * b_scale
            G = torch.randn(dim, dim, generator=g)
            return (G + G.T) * b_scale

        B = _stack(seeds, "data", draw_b)
        if structure == "structured":
            self.register_buffer("b_diag", B)
            self.register_buffer("eigvecs", torch.eye(dim))
            self.register_buffer("eigvals", B)
        else:
            self.register_buffer("B", B)
            vals, vecs = torch.linalg.eigh(B)  # float32: fast, and accurate far below c_th
            self.register_buffer("eigvecs", vecs)
            self.register_buffer("eigvals", vals)
        self.params = nn.ParameterList([nn.Parameter(_stack(seeds, "model", lambda g: torch.randn(dim, generator=g))
                                                     * init_std)])
        self._drop = [generator(s, "noise") for s in seeds]

    @property
    def w(self) -> torch.Tensor:
        return self.params[0]

    def objective(self, w: torch.Tensor) -> torch.Tensor:
        if self.structure == "structured":
            return w.square().sum(-1).square() - (w * self.b_diag * w).sum(-1)
        # B symmetric: d(w^T B w)/dw = 2 B w, so one pass over the (K, d, d) B serves value and gradient
        # (autograd would read B again in the backward; B dominates the step's memory traffic)
        bw = torch.bmm(self.B, w.detach().unsqueeze(-1)).squeeze(-1)
        quad = 2 * (w * bw).sum(-1) - (w.detach() * bw).sum(-1)
        return w.square().sum(-1).square() - quad

    def loss(self, x=None, y=None) -> torch.Tensor:
        w = self.w
        if self.training and self.dropout > 0:
            keep = torch.stack([torch.rand(self.dim, generator=g) >= self.dropout for g in self._drop]).to(w)
            w = w * keep / (1 - self.dropout)
        return self.objective(w)

    def forward(self, x=None) -> torch.Tensor:
        return self.objective(self.w)

    def symmetry_point(self):
        return self.w.detach(), self.eigvecs, self.c_th

    def optimum(self) -> torch.Tensor:
        """The global minimum -lambda_max^2 / 4 (w along the top eigenvector, |w|^2 = lambda_max / 2)."""
        lam = self.eigvals.amax(-1).clamp_min(0)
        return -lam.square() / 4

    def curves(self, task) -> dict[str, torch.Tensor]:
        w = self.w.detach()
        degree = R.symmetry_degree(w, self.eigvecs, self.c_th)
        return {"train/objective": self.objective(w), "sym/symmetry_degree": degree}

    def final_metrics(self, task) -> dict[str, torch.Tensor]:
        obj = self.objective(self.w.detach())
        return {"train/objective": obj, "train/objective_gap": obj - self.optimum()}


class ReparamLinear(nn.Module):
    """Redundantly parametrized linear regression f(x) = (u * w)^T x (Poon & Peyre; seed 002 Fig. 3
    right): the rescaling symmetry u_i -> c u_i, w_i -> w_i / c makes u_i = w_i = 0 a dead coordinate."""

    def __init__(self, in_dim: int = 200, init_std: float = 1.0, dead_tol: float = 1e-3,
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__()
        self.members, self.in_dim, self.dead_tol = len(seeds), in_dim, dead_tol
        std = init_std / in_dim**0.25  # u_i w_i ~ init_std^2 / sqrt(d): an O(1) output at init

        def draw(g):
            return torch.randn(2, in_dim, generator=g) * std

        uw = _stack(seeds, "model", draw)
        self.params = nn.ParameterList([nn.Parameter(uw[:, 0].contiguous()), nn.Parameter(uw[:, 1].contiguous())])

    @property
    def u(self) -> torch.Tensor:
        return self.params[0]

    @property
    def w(self) -> torch.Tensor:
        return self.params[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("knd,kd->kn", x, self.u * self.w)

    def loss(self, x, y) -> torch.Tensor:
        return (self(x) - y).square().mean(-1)

    def curves(self, task) -> dict[str, torch.Tensor]:
        dm = task.datamodule
        return {"sym/dead_coordinates": R.dead_coordinates(self.u.detach(), self.w.detach(), self.dead_tol),
                "test/mse": self.loss(dm.x_val, dm.y_val).detach()}

    def final_metrics(self, task) -> dict[str, torch.Tensor]:
        return self.curves(task)


class RidgeSweep(nn.Module):
    """Linear regression on the first d features for every d in ``dims`` at once (one member = one seed's
    whole double-descent curve): theta (K, M, d_max), features beyond d masked out. loss = sum over the M
    problems of (1/N) |X_d theta_d - y|^2; with torch's weight_decay wd the ridge strength of the
    closed form is gamma = N * wd / 2."""

    def __init__(self, in_dim: int, dims: Sequence[int], init_std: float = 0.0, seeds: Sequence[int] = (0,)) -> None:
        super().__init__()
        dims = [int(d) for d in dims]
        if not dims or max(dims) > in_dim or min(dims) <= 0:
            raise ValueError(f"model.dims: need 0 < d <= data.dim={in_dim} for every d, got {dims}")
        self.members, self.in_dim, self.dims = len(seeds), in_dim, dims
        mask = torch.zeros(len(dims), in_dim)
        for m, d in enumerate(dims):
            mask[m, :d] = 1
        self.register_buffer("mask", mask)
        theta = _stack(seeds, "model", lambda g: torch.randn(len(dims), in_dim, generator=g) * init_std)
        self.params = nn.ParameterList([nn.Parameter(theta)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (K, n, D) -> (K, M, n)."""
        return torch.einsum("knd,kmd->kmn", x, self.params[0] * self.mask)

    def losses(self, x, y) -> torch.Tensor:
        return (self(x) - y[:, None, :]).square().mean(-1)  # (K, M)

    def loss(self, x, y) -> torch.Tensor:
        return self.losses(x, y).sum(-1)

    def closed_form(self, x, y, gamma: float, theta0: torch.Tensor | None) -> torch.Tensor:
        """phi* = (X^T X + gamma I)^-1 (X^T y + gamma theta0) on each problem's d features, (K, M, D), on x's
        device. Solved in float64 on the CPU: lstsq's min-norm driver (gelsd) exists only there."""
        K, M, D = self.members, len(self.dims), self.in_dim
        out = torch.zeros(K, M, D, dtype=torch.float64)
        t0 = torch.zeros(K, M, D, dtype=torch.float64) if theta0 is None else theta0.detach().double().cpu()
        X, Y = x.detach().double().cpu(), y.detach().double().cpu()
        for m, d in enumerate(self.dims):
            Xd = X[:, :, :d]
            A = Xd.transpose(1, 2) @ Xd + gamma * torch.eye(d, dtype=torch.float64)
            if gamma == 0:
                out[:, m, :d] = torch.linalg.lstsq(Xd, Y[..., None], driver="gelsd").solution[..., 0]
            else:
                rhs = (Xd.transpose(1, 2) @ Y[..., None])[..., 0] + gamma * t0[:, m, :d]
                out[:, m, :d] = torch.linalg.solve(A, rhs)
        return out.to(x.device)

    def final_metrics(self, task) -> dict[str, torch.Tensor]:
        dm = task.datamodule
        test = self.losses(dm.x_val, dm.y_val).detach()
        out = {f"test/mse/d{d}": test[:, m] for m, d in enumerate(self.dims)}
        opt = task.optimizers()
        opt = getattr(opt, "optimizer", opt)
        wd = float(opt.param_groups[0]["weight_decay"])
        syre = task.syre
        theta0 = syre.theta0.get("params.0") if syre is not None and hasattr(syre, "theta0") else None
        gamma = dm.n_train * wd / 2
        phi = self.closed_form(dm.x_train, dm.y_train, gamma, theta0)
        if gamma == 0:  # GD from 0 (or tiny init) converges to the min-norm solution only where it is unique
            keep = torch.tensor([d <= dm.n_train for d in self.dims], device=phi.device)
        else:
            keep = torch.ones(len(self.dims), dtype=torch.bool, device=phi.device)
        diff = ((self.params[0].detach().double() - phi) * self.mask).abs().amax(-1)[:, keep]
        out["ridge/closed_form_gap"] = diff.amax(-1).float()
        out["ridge/theta0_shift"] = (phi - self.closed_form(dm.x_train, dm.y_train, gamma, None)).abs().amax((-1, -2))
        test_cf = (torch.einsum("knd,kmd->kmn", dm.x_val.double(), phi) - dm.y_val.double()[:, None]).square().mean(-1)
        out.update({f"test/closed_form_mse/d{d}": test_cf[:, m].float() for m, d in enumerate(self.dims)})
        self._last = (test.cpu(), test_cf.cpu(), dm.n_train)
        return out

    def figures(self, task, fig_dir):
        from symexp.figstyle import plt, rc_context, save

        if not hasattr(self, "_last"):
            return {}
        test, test_cf, n = self._last
        ratio = torch.tensor(self.dims, dtype=torch.float64) / n
        with rc_context():
            fig, ax = plt.subplots(figsize=(4.5, 3.2))
            ax.plot(ratio, median(test, 0), "o-", label="trained (median over members)")
            ax.plot(ratio, median(test_cf, 0), "k--", label="closed form")
            ax.set(yscale="log", xlabel="input dimension / training samples (d / N)", ylabel="test MSE",
                   title=f"Ridge double descent, {task.syre_note()}")
            ax.legend()
            path = save(fig, fig_dir / "double_descent.png")
        return {"double_descent": path}
