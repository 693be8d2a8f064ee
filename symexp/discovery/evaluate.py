"""Evaluation of learned symmetries: invariance against random directions, group-axiom residuals,
finite transformations by integrating the learned flow, alignment with known symmetries."""

from __future__ import annotations

import math

import torch

from symexp.discovery.action import GeneratorModel
from symexp.discovery.losses import bracket_residual
from symexp.discovery.targets import TargetNet


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1).abs() / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30)


def loss_gradients(target: TargetNet, theta, x, y) -> torch.Tensor:
    return torch.func.vmap(torch.func.grad(target.loss))(theta, x, y)


def invariance_errors(target, model, theta, x, y, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Mean |cos(grad L, v)|: the first-order loss change per unit step along v, relative to the steepest.
    Learned directions v = D_g a(h_i); random directions are isotropic Gaussians."""
    grads = loss_gradients(target, theta, x, y)
    fields = model.fields(theta, x.flatten(1))
    learned = torch.stack([_cos(grads, f).mean() for f in fields])
    rand = torch.randn(theta.shape, generator=gen).to(theta)
    random = _cos(grads, rand).mean()
    return {"learned": learned, "random": random, "ratio": random / learned.max().clamp_min(1e-30)}


def identity_residual(model: GeneratorModel, theta, x) -> torch.Tensor:
    x = x.flatten(1)
    return (model.act(model.identity(theta), theta, x) - theta).norm(dim=-1).mean()


def assoc_residual(model: GeneratorModel, theta, x) -> torch.Tensor:
    """Mean bracket residual over generator pairs (NaN with a single generator: nothing to check)."""
    x = x.flatten(1)
    pairs = [(i, j) for i in range(model.k) for j in range(i + 1, model.k)]
    if not pairs:
        return torch.tensor(math.nan)
    with torch.enable_grad():
        fields = model.fields(theta, x)
        res = [bracket_residual(model, i, j, theta, x, fields, "bracket").mean() for i, j in pairs]
    return torch.stack(res).mean().detach()


def integrate_flow(field_fn, theta: torch.Tensor, arclength: float, steps: int = 20) -> torch.Tensor:
    """RK4 on d theta / ds = v(theta) / |v(theta)|: the orbit through theta, by arclength."""
    def unit(t):
        v = field_fn(t)
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)

    ds = arclength / steps
    for _ in range(steps):
        k1 = unit(theta)
        k2 = unit(theta + 0.5 * ds * k1)
        k3 = unit(theta + 0.5 * ds * k2)
        k4 = unit(theta + ds * k3)
        theta = theta + ds / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return theta


def relative_change(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return (after - before).abs() / before.abs().clamp_min(1e-12)


def finite_flow(target, model, theta, x, y, arclength: float, gen: torch.Generator, steps: int = 20):
    """Loss change after moving `arclength` along the learned flow of each generator, and along a straight
    random direction of the same length. Returns (learned (k,), random) medians of relative change."""
    x_flat = x.flatten(1)
    base = target.batch_loss(theta, x, y)
    learned = []
    for i in range(model.k):
        moved = integrate_flow(lambda t, i=i: model.field(model.h[i], t, x_flat), theta, arclength, steps)
        learned.append(relative_change(base, target.batch_loss(moved, x, y)).median())
    d = torch.randn(theta.shape, generator=gen).to(theta)
    d = d / d.norm(dim=-1, keepdim=True)
    random = relative_change(base, target.batch_loss(theta + arclength * d, x, y)).median()
    return torch.stack(learned), random


def alignment(target: TargetNet, model: GeneratorModel, theta, x) -> torch.Tensor:
    """gen/alignment: mean over samples and generators of the |cosine| between the learned infinitesimal
    action v and the known symmetry's tangent space at theta, i.e. |P v| / |v| with P the orthogonal
    projection onto the span of the known tangents (for one known tangent: |cos(v, t)|). NaN if none."""
    fields = model.fields(theta, x.flatten(1))
    scores = []
    for b in range(theta.shape[0]):
        basis = target.known_tangents(theta[b], x[b])
        if basis is None:
            return torch.tensor(math.nan)
        basis = basis.to(torch.float64)
        basis = basis[torch.isfinite(basis).all(-1)]  # e.g. 1/tanh' overflows where tanh saturates
        basis = basis[basis.norm(dim=-1) > 0]
        basis = basis / basis.norm(dim=-1, keepdim=True)
        u, s, _ = torch.linalg.svd(basis.T, full_matrices=False)
        q = u[:, s > 1e-8 * s.max()]  # (n, rank) orthonormal basis of the span
        for f in fields:
            v = f[b].to(torch.float64)
            scores.append((q.T @ v).norm() / v.norm().clamp_min(1e-30))
    return torch.stack(scores).mean().float()


def generator_alignment(target: TargetNet, model: GeneratorModel) -> torch.Tensor:
    """For a linear learned action: mean over h_i of |P h_i| / |h_i| with P the projection (Frobenius) onto
    the span of the known generators; NaN if the action is not linear or no linear symmetry is known."""
    known = target.known_generators()
    if model.kind != "linear" or known is None:
        return torch.tensor(math.nan)
    q = torch.linalg.qr(known.flatten(1).T.double()).Q
    h = model.h.detach().flatten(1).double()
    return ((h @ q).norm(dim=-1) / h.norm(dim=-1)).mean().float()


def effective_generators(model: GeneratorModel, theta, x) -> torch.Tensor:
    """Least-squares M_i with v_i(theta) ~ M_i theta over the samples: the learned vector field read as a
    linear generator (what Figs. 2-5 would show if the action were linear). (k, n, n)."""
    fields = model.fields(theta, x.flatten(1))
    sol = [torch.linalg.lstsq(theta, f).solution.T for f in fields]
    return torch.stack(sol)
