"""Evaluation of learned symmetries: invariance against random directions, group-axiom residuals,
finite transformations by integrating the learned flow, alignment with known symmetries."""

from __future__ import annotations

import math

import torch

from symexp.discovery.action import GeneratorModel
from symexp.discovery.losses import bracket_residual
from symexp.discovery.targets import TargetNet
from symexp.stats import median


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1).abs() / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30)


def loss_gradients(target: TargetNet, theta, x, y) -> torch.Tensor:
    return torch.func.vmap(torch.func.grad(target.loss))(theta, x, y)


def invariance_errors(target, model, theta, x, y, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Mean |cos(grad L, v)|: the first-order loss change per unit step along v, relative to the steepest.
    Learned directions v = D_g a(h_i); random directions are isotropic Gaussians; ``same_layers`` (k,) uses
    random directions with each learned field's per-layer norms (same_layer_random)."""
    grads = loss_gradients(target, theta, x, y)
    fields = model.fields(theta, x.flatten(1))
    learned = torch.stack([_cos(grads, f).mean() for f in fields])
    rand = torch.randn(theta.shape, generator=gen).to(theta)
    random = _cos(grads, rand).mean()
    # own generator: the draws above (and finite_flow's after them) stay what they were before this baseline
    layer_gen = torch.Generator().manual_seed(4242)
    same_layers = torch.stack([_cos(grads, same_layer_random(target, f, layer_gen)).mean() for f in fields])
    return {"learned": learned, "random": random, "ratio": random / learned.max().clamp_min(1e-30),
            "same_layers": same_layers}


def same_layer_random(target: TargetNet, field: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random directions with the field's norm in every layer, per sample: the baseline for "moves the right
    layers". The loss gradient is smaller on some layers (sigmoid: sigma' <= 1/4 scales dL/dW1), so a field that
    only picks such a layer beats isotropic random directions without being invariant; against this baseline
    it scores about 1."""
    sizes = [math.prod(shape) for _, shape in target.layout]
    rand = torch.randn(field.shape, generator=gen).to(field)
    parts = [r / r.norm(dim=-1, keepdim=True).clamp_min(1e-30) * f.norm(dim=-1, keepdim=True)
             for f, r in zip(field.split(sizes, -1), rand.split(sizes, -1))]
    return torch.cat(parts, -1)


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
        learned.append(median(relative_change(base, target.batch_loss(moved, x, y))))
    d = torch.randn(theta.shape, generator=gen).to(theta)
    d = d / d.norm(dim=-1, keepdim=True)
    random = median(relative_change(base, target.batch_loss(theta + arclength * d, x, y)))
    return torch.stack(learned), random


def _span(basis: torch.Tensor) -> torch.Tensor:
    """(n, rank) orthonormal basis of the span of the rows of ``basis`` (non-finite and zero rows dropped)."""
    basis = basis.to(torch.float64)
    basis = basis[torch.isfinite(basis).all(-1)]  # e.g. 1/tanh' overflows where tanh saturates
    basis = basis[basis.norm(dim=-1) > 0]
    if basis.shape[0] == 0:
        return basis.new_zeros(basis.shape[1], 0)
    basis = basis / basis.norm(dim=-1, keepdim=True)
    u, s, _ = torch.linalg.svd(basis.T, full_matrices=False)
    return u[:, s > 1e-5 * s.max()]  # tangents are computed in float32: smaller singular values are noise


def alignment_report(target: TargetNet, model: GeneratorModel, theta, x) -> dict[str, torch.Tensor]:
    """How each learned infinitesimal action v_i = D_g a_X(h_i) relates to the known symmetries, averaged over
    the samples (theta, X):
      gen/alignment (and /h<i>): |P v| / |v|, P the orthogonal projection onto the span of all known tangents
        at theta (one known tangent: exactly |cos(v, t)|); NaN where nothing is known;
      gen/alignment/<family>/h<i>: the same against one family of known_tangent_groups (e.g. gl_data, unseen);
      gen/layer_share/<layer>/h<i>: |v_layer|^2 / |v|^2, which weights the generator moves;
      gen/unexplained/<layer>/h<i>: |(v - P v)_layer|^2 / |v|^2, where the part outside the known span sits
        (their sum is 1 - alignment^2 per sample): what a new symmetry acts on."""
    fields = [f.detach().to(torch.float64) for f in model.fields(theta, x.flatten(1))]
    names = [name for name, _ in target.layout]
    sizes = [math.prod(shape) for _, shape in target.layout]
    acc: dict[str, list[torch.Tensor]] = {}

    def add(key: str, value: torch.Tensor) -> None:
        acc.setdefault(key, []).append(value)

    all_groups = [target.known_tangent_groups(theta[b], x[b]) for b in range(theta.shape[0])]
    families = sorted({name for groups in all_groups for name in groups})
    for b, groups in enumerate(all_groups):
        spans = {name: _span(groups[name]) if name in groups else None for name in families}
        union = _span(torch.cat(list(groups.values()))) if groups else None
        for i, f in enumerate(fields):
            v = f[b]
            norm = v.norm().clamp_min(1e-30)
            if union is not None:
                proj = union @ (union.T @ v)
                add(f"gen/alignment/h{i + 1}", (union.T @ v).norm() / norm)
                for name, q in spans.items():  # a family absent at this sample counts as 0
                    add(f"gen/alignment/{name}/h{i + 1}", (q.T @ v).norm() / norm if q is not None else 0 * norm)
            else:
                proj = torch.zeros_like(v)
            for layer, part, rest in zip(names, v.split(sizes), (v - proj).split(sizes)):
                add(f"gen/layer_share/{layer}/h{i + 1}", part.square().sum() / norm**2)
                add(f"gen/unexplained/{layer}/h{i + 1}", rest.square().sum() / norm**2)
    out = {key: torch.stack(vals).mean().float() for key, vals in acc.items()}
    per_gen = [out[f"gen/alignment/h{i + 1}"] for i in range(model.k) if f"gen/alignment/h{i + 1}" in out]
    out["gen/alignment"] = torch.stack(per_gen).mean() if per_gen else torch.tensor(math.nan)
    return out


def alignment(target: TargetNet, model: GeneratorModel, theta, x) -> torch.Tensor:
    """gen/alignment: mean over samples and generators of |P v| / |v| (see alignment_report). NaN if none."""
    return alignment_report(target, model, theta, x)["gen/alignment"]


def data_dependence(model: GeneratorModel, theta, x, gen: torch.Generator) -> torch.Tensor:
    """(k,) mean |v(theta, X) - v(theta, X')| / |v(theta, X)| with X' another sample's data: 0 for a
    data-independent action, about sqrt(2) for a field that forgets theta and follows X."""
    x = x.flatten(1)
    other = x[torch.randperm(x.shape[0], generator=gen)]
    a, b = model.fields(theta, x), model.fields(theta, other)
    return torch.stack([((fa - fb).norm(dim=-1) / fa.norm(dim=-1).clamp_min(1e-30)).mean() for fa, fb in zip(a, b)])


def field_independence(model: GeneratorModel, theta, x) -> torch.Tensor:
    """Mean over samples of s_min / s_max of the k stacked unit fields: 1 for orthogonal fields, 0 when the
    generators' infinitesimal actions coincide (k generators that found one symmetry). NaN for k = 1."""
    if model.k < 2:
        return torch.tensor(math.nan)
    fields = torch.stack(model.fields(theta, x.flatten(1)), 1)  # (B, k, n)
    unit = fields / fields.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    sv = torch.linalg.svdvals(unit.double())
    return (sv[:, -1] / sv[:, 0]).mean().float()


INVARIANT_RATIO = 10.0  # a generator counts as learned if its invariance error is this far below random
PARTLY_RATIO = 3.0  # ... as partly learned between this and INVARIANT_RATIO
MATCH_ALIGNMENT = 0.95  # ... and as a known symmetry if this much of its field lies in the known span


def verdict(metrics: dict[str, float], i: int) -> str:
    """Classify generator h_i from measured metrics (not from its picture): 'not learned' if its invariance
    error is less than PARTLY_RATIO below random directions, 'partly learned' below INVARIANT_RATIO (with
    its alignment); else 'matches known <families>' if its alignment with the known span is >=
    MATCH_ALIGNMENT, otherwise 'new', with where its unexplained part sits."""
    tag = f"h{i}"
    learned = metrics.get(f"gen/invariance_learned/{tag}", math.nan)
    ratio = metrics.get("gen/invariance_random", math.nan) / max(learned, 1e-30)
    align = metrics.get(f"gen/alignment/{tag}", math.nan)
    if not ratio >= PARTLY_RATIO:
        return f"not learned (invariance {ratio:.1f}x below random)"
    if ratio < INVARIANT_RATIO:
        known = f"alignment {align:.2f}" if math.isfinite(align) else "no known symmetry"
        return f"partly learned (invariance {ratio:.1f}x below random, {known})"
    layers = sorted({k.split("/")[2] for k in metrics if k.startswith("gen/layer_share/")})
    if math.isfinite(align) and align >= MATCH_ALIGNMENT:
        fams = {k.split("/")[2]: v for k, v in metrics.items()
                if k.startswith("gen/alignment/") and k.endswith(f"/{tag}") and k.count("/") == 3}
        parts = ", ".join(f"{name} {value:.2f}" for name, value in sorted(fams.items(), key=lambda kv: -kv[1]))
        return f"matches known ({parts})"
    where = {layer: metrics.get(f"gen/unexplained/{layer}/{tag}", 0.0) for layer in layers}
    total = sum(where.values())
    on = "+".join(layer for layer, value in where.items() if value >= 0.15 * total)
    known = f"alignment {align:.2f}" if math.isfinite(align) else "no known symmetry"
    return f"new ({known}; {100 * total:.0f}% of |v|^2 outside the known span, on {on})"


def generator_alignment(target: TargetNet, model: GeneratorModel) -> torch.Tensor:
    """For the linear and the deformed linear action (whose field is h theta plus the MLP's correction): mean
    over h_i of |P h_i| / |h_i| with P the projection (Frobenius) onto the span of the known generators; NaN
    for the paper's MLP action (h enters it through a learned layer) or where no linear symmetry is known."""
    known = target.known_generators()
    if model.kind == "mlp" or known is None:
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
