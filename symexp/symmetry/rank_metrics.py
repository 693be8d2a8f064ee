"""Metric adapters for the rank measures (symexp.symmetry.rank): features of layers chosen by name are
captured with forward hooks on one evaluation batch and logged under rank/<measure>/<layer>.

The evaluation batch is ``task.eval_inputs()`` when the task has it, else ``datamodule.x_val``. Layers
are submodule names of ``task.model`` (``model.get_submodule``); their outputs are (n, units),
(K, n, units) for ensembles, or conv maps (n, C, ...) flattened to (n, C*H*W) as everywhere in symexp
(symexp.symmetry.rank.feature_matrix)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from symexp.symmetry import rank as R
from symexp.symmetry.metrics import Metric


def _as_features(out: torch.Tensor, members: int) -> torch.Tensor:
    """(K, n, units) for an ensemble's stacked output, else one member's samples x units matrix."""
    if out.dim() == 3 and out.shape[0] == members:
        return out
    return R.feature_matrix(out)[None]


def capture(task, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Run the evaluation batch once; return layer -> (K, n, units) features."""
    model = task.model
    x = task.eval_inputs() if hasattr(task, "eval_inputs") else task.datamodule.x_val
    got: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"metric.*.layers: the model has no submodule {name!r}") from None
        handles.append(module.register_forward_hook(lambda m, i, o, name=name: got.__setitem__(name, o.detach())))
    try:
        with torch.no_grad():
            model(x.to(task.device))
    finally:
        for h in handles:
            h.remove()
    return {n: _as_features(got[n], task.members) for n in layers}


class RankMetrics(Metric):
    """rank/<measure>/<layer> for the chosen measures and layers (covariance_rank, low_rankness,
    effective_rank, approximate_rank, abs_approximate_rank, dead_units)."""

    MEASURES = ("covariance_rank", "low_rankness", "effective_rank", "approximate_rank", "abs_approximate_rank",
                "dead_units")

    def __init__(self, layers: Sequence[str], measures: Sequence[str] = MEASURES, tol: float = R.COV_TOL,
                 relative: bool = False, threshold: float = 0.99, every_n_epochs: int = 0) -> None:
        super().__init__(every_n_epochs)
        bad = [m for m in measures if m not in self.MEASURES]
        if bad:
            raise ValueError(f"metric.rank.measures: unknown {bad}; choose from {list(self.MEASURES)}")
        self.layers, self.measures = list(layers), list(measures)
        self.tol, self.relative, self.threshold = tol, relative, threshold

    def __call__(self, task, computed):
        feats = capture(task, self.layers)
        out = {}
        for layer, f in feats.items():
            for m in self.measures:
                if m in ("covariance_rank", "low_rankness"):
                    v = getattr(R, m)(f, self.tol, self.relative)
                elif m in ("approximate_rank", "abs_approximate_rank"):
                    v = getattr(R, m)(f, self.threshold)
                else:
                    v = getattr(R, m)(f)
                out[f"rank/{m}/{layer}"] = v
        return out


class SymmetryDegree(Metric):
    """sym/symmetry_degree for models exposing ``symmetry_point() -> (w (K, d), eigvecs)`` (the symmetry
    benchmark); the threshold c_th comes from the model (structured 1e-1, unstructured 1e-3) unless set."""

    def __init__(self, c_th: float | None = None, every_n_epochs: int = 0) -> None:
        super().__init__(every_n_epochs)
        self.c_th = c_th

    def __call__(self, task, computed):
        w, vecs, c_th = task.model.symmetry_point()
        return {"sym/symmetry_degree": R.symmetry_degree(w, vecs, self.c_th if self.c_th is not None else c_th)}


class DeadCoordinates(Metric):
    """sym/dead_coordinates for the reparametrized regression (model attributes u, w of shape (K, d))."""

    def __init__(self, tol: float = 1e-3, every_n_epochs: int = 0) -> None:
        super().__init__(every_n_epochs)
        self.tol = tol

    def __call__(self, task, computed):
        return {"sym/dead_coordinates": R.dead_coordinates(task.model.u.detach(), task.model.w.detach(), self.tol)}
