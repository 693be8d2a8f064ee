"""Representation ranks at named layers and the NTK rank (seed 002 Figs. 5, 8, 9, 11, 12, 14; Table 1).

Forward-hook capture by module name, the NTK rank and the metric-group adapters ``RepresentationRank``
and ``NTKRank``. The rank measures themselves (covariance rank, low-rankness, effective rank; one
implementation, one default tolerance ``rank.COV_TOL`` = 1e-4) live in symexp.symmetry.rank; seed 002's
figures that use another tolerance (1e-6 for the VAE, 1e-5 for SimCLR's low-rankness) pass it from their
task config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from symexp.symmetry import rank
from symexp.symmetry.metrics import Metric


# ---------------------------------------------------------------------------------------------- capture
def capture(model: nn.Module, x: torch.Tensor, layers: Sequence[str], call=None) -> dict[str, torch.Tensor]:
    """Outputs of the named submodules on x as (N, features) matrices (rank.feature_matrix: a conv map's
    C*H*W activations are its units). ``call`` replaces
    model(x) (e.g. ``model.encode``); modules are found with model.get_submodule."""
    found: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][:40]
            raise ValueError(f"metric.layers: model has no submodule {name!r}; some names: {names}") from None

        def hook(_m, _inp, out, name=name):
            out = out[0] if isinstance(out, tuple) else out
            found[name] = rank.feature_matrix(out.detach()).float()

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            (call or model)(x)
    finally:
        for h in handles:
            h.remove()
    return found


def layer_ranks(features: Mapping[str, torch.Tensor], tol: float = rank.COV_TOL,
                prefix: str = "rank") -> dict[str, float]:
    """rank/<layer>/cov_rank, /effective_rank, /dims for every captured layer."""
    out = {}
    for name, f in features.items():
        out[f"{prefix}/{name}/cov_rank"] = float(rank.covariance_rank(f, tol))
        out[f"{prefix}/{name}/effective_rank"] = float(rank.effective_rank(f))
        out[f"{prefix}/{name}/dims"] = float(f.shape[1])
    return out


# ---------------------------------------------------------------------------------------------- NTK
def _flat_jacobian(model: nn.Module, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-sample Jacobian of the outputs w.r.t. params, (N * outputs, P), through torch.func."""
    from torch.func import functional_call, jacrev, vmap

    buffers = dict(model.named_buffers())

    def f(p, xi):
        return functional_call(model, (p, buffers), (xi[None],))[0]

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)  # name -> (N, out, *shape)
    return torch.cat([j.flatten(2) for j in jac.values()], 2).flatten(0, 1)


def ntk_ranks(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, tol: float = 1e-6) -> dict[str, float]:
    """Rank of the empirical NTK J J^T (J: per-sample output Jacobian) and of the per-sample loss-gradient
    second moment G^T G (the ranks of J and G themselves), singular values below tol * the largest
    counting as zero. For Fig. 14."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    was_training = model.training
    model.eval()
    try:
        jac = _flat_jacobian(model, x, params).double()
        out = {"ntk_rank": float(torch.linalg.matrix_rank(jac, rtol=tol)), "params": float(jac.shape[1])}
        if y is not None:
            from torch.func import functional_call, grad, vmap

            buffers = dict(model.named_buffers())

            def loss(p, xi, yi):
                return nn.functional.cross_entropy(functional_call(model, (p, buffers), (xi[None],)), yi[None])

            g = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
            gm = torch.cat([v.flatten(1) for v in g.values()], 1).double()
            out["grad_cov_rank"] = float(torch.linalg.matrix_rank(gm, rtol=tol))
    finally:
        model.train(was_training)
    return out


def permutation_rank_bound(model: nn.Module) -> float:
    """Propositions 2-3 upper bound for an IdenticalNeuronsNet: P - (in + out [+ 1 bias]) per neuron that
    duplicates another (the permutation-symmetric subspace it is stuck in)."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # exact copies only: the bound counts neurons inside the permutation-symmetric subspace
    distinct = model.distinct_neurons(rtol=1e-6) if hasattr(model, "distinct_neurons") else getattr(model, "width", 0)
    hidden = model.hidden
    per_neuron = hidden.in_features + model.out.out_features + (1 if hidden.bias is not None else 0)
    return float(total - (model.width - distinct) * per_neuron)


# ---------------------------------------------------------------------------------------------- metrics
def _probe(task, n: int) -> torch.Tensor:
    return task.probe_inputs(n).to(task.device)


class RepresentationRank(Metric):
    """rank/<alias>/cov_rank and rank/<alias>/effective_rank of named layers on n fixed test inputs.
    ``layers``: a list of module names, or a mapping alias -> module name."""

    def __init__(self, layers: Sequence[str] | Mapping[str, str], n_samples: int = 1000, tol: float = rank.COV_TOL,
                 every_n_epochs: int = 0) -> None:
        super().__init__(every_n_epochs)
        if tol < 0 or n_samples <= 0:
            raise ValueError(f"metric.representation_rank.tol/n_samples: need tol >= 0 and n_samples > 0, got {tol}, {n_samples}")
        self.layers = dict(layers) if isinstance(layers, Mapping) else {n: n for n in layers}
        self.n_samples, self.tol = n_samples, tol

    def __call__(self, task, computed):
        model = task.model
        was_training = model.training
        model.eval()
        try:
            feats = capture(model, _probe(task, self.n_samples), list(self.layers.values()))
        finally:
            model.train(was_training)
        named = {alias: feats[name] for alias, name in self.layers.items()}
        return {k: torch.tensor([v]) for k, v in layer_ranks(named, self.tol).items()}


class NTKRank(Metric):
    """rank/ntk, rank/grad_cov and (for IdenticalNeuronsNet) rank/ntk_bound on n fixed test samples."""

    def __init__(self, n_samples: int = 100, tol: float = 1e-6, every_n_epochs: int = 0) -> None:
        super().__init__(every_n_epochs)
        self.n_samples, self.tol = n_samples, tol

    def __call__(self, task, computed):
        x, y = task.datamodule.split("test")
        x, y = x[: self.n_samples].to(task.device), y[: self.n_samples].to(task.device)
        r = ntk_ranks(task.model, x, y, self.tol)
        out = {"rank/ntk": r["ntk_rank"], "rank/grad_cov": r["grad_cov_rank"], "rank/params": r["params"]}
        if hasattr(task.model, "distinct_neurons"):
            out["rank/ntk_bound"] = permutation_rank_bound(task.model)
            out["rank/distinct_neurons"] = float(task.model.distinct_neurons())
        return {k: torch.tensor([v]) for k, v in out.items() if not math.isnan(v)}
