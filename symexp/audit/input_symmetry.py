"""Seed 000's tools where the input has a declared symmetry transform T (neg, reflect<i>, swap<i><j>):
the output defect D_out(T), the active partial defect of every hidden layer (its post-activation units
are its partial functions) and, for T = neg, the mirror pairing of the first layer's atoms
sigma(a_j^T x + b_j) with their mirrors (-a_j, b_j)."""

from __future__ import annotations

import torch
from torch import nn

from symexp.audit.graph import Layer
from symexp.audit.weights import outgoing
from symexp.data.transforms import transform
from symexp.symmetry.defects import active_partials, masked_median_max, partial_defects, relative_defect
from symexp.symmetry.mirror import mirror_correlation, mirror_mismatch, nearest_mirrors


def declared_transform(name: str, x: torch.Tensor):
    return transform(name, x.shape[-1], key="audit.transform")


def output_defect(f: torch.Tensor, f_t: torch.Tensor) -> float:
    """The worst output coordinate's D_out(T) over the inputs."""
    return float(relative_defect(f.flatten(1), f_t.flatten(1), dim=0).max())


def layer_defect(p: torch.Tensor, p_t: torch.Tensor, tau: float) -> dict[str, float]:
    """Median and max partial defect over the layer's active units (variance above tau * the largest)."""
    active = active_partials(p, tau)
    med, mx = masked_median_max(partial_defects(p, p_t), active)
    return {"partial_defect": float(med), "partial_defect_max": float(mx), "active_partials": int(active.sum())}


def mirror_pairs(model: nn.Module, layers: list[Layer]) -> dict | None:
    """Nearest-mirror diagnostics of the first layer (needs a Linear first layer with a successor, or a
    model exposing first_layer() -> (a, b, c) like symexp's RF-LR); the median over ensemble members."""
    if hasattr(model, "first_layer"):
        a, b, c = (t.detach() for t in model.first_layer())
    else:
        first = layers[0] if layers else None
        if first is None or first.kind != "linear" or first.successor is None:
            return None
        modules = dict(model.named_modules())
        a = first.module.weight.detach()
        bias = first.module.bias
        b = bias.detach() if bias is not None else torch.zeros(a.shape[0])
        c = outgoing(modules, first)
    idx, dist = nearest_mirrors(a.double(), b.double())
    mm, corr = mirror_mismatch(c.double(), idx), mirror_correlation(c.double(), idx)
    return {"mirror_mismatch": float(mm.median()), "mirror_corr": float(corr.median()),
            "mirror_distance": float(dist.median(-1).values.median())}
