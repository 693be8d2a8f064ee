"""Mirror symmetries (seed 004): a loss has the O-mirror symmetry if l(theta) = l((I - 2 O O^T) theta),
O with orthonormal columns; weight decay or gradient noise then drives theta to the constraint O^T theta = 0.

Constructors for the layers of a plain MLP with a flat parameter vector (layout = weight shapes, no biases):
  * rescaling: flip the sign of one hidden unit's incoming and outgoing weights (a symmetry for odd
    activations: identity, tanh; O^T theta = 0 means the unit is dead -> sparsity);
  * rotation: reflect the hidden layer across a unit vector n (a symmetry for linear layers; O^T theta = 0
    means W_in^T n = 0 and W_out n = 0 -> low rank);
  * permutation: swap two hidden units (a symmetry for any elementwise activation; O^T theta = 0 means the
    two units are identical -> homogeneous ensembles).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from symexp.symmetry.metrics import Metric

Layout = Sequence[tuple[int, int]]  # weight shapes (out, in) of consecutive layers


def offsets(layout: Layout) -> list[int]:
    out, i = [], 0
    for shape in layout:
        out.append(i)
        i += shape[0] * shape[1]
    return out


def n_params(layout: Layout) -> int:
    return sum(a * b for a, b in layout)


def unflatten(theta: torch.Tensor, layout: Layout) -> list[torch.Tensor]:
    return [theta[o : o + a * b].reshape(a, b) for o, (a, b) in zip(offsets(layout), layout)]


def mlp_loss(layout: Layout, activation: Callable, x: torch.Tensor, y: torch.Tensor) -> Callable:
    """theta -> mean squared error of the MLP W_L act(... act(W_1 x)) on (x (N, d), y (N, m))."""
    def loss(theta: torch.Tensor) -> torch.Tensor:
        h = x.T
        ws = unflatten(theta, layout)
        for i, w in enumerate(ws):
            h = w @ h
            if i < len(ws) - 1:
                h = activation(h)
        return (h.T - y).square().mean()
    return loss


def _unit(n: int, idx: Sequence[int], values: Sequence[float] | None = None) -> torch.Tensor:
    v = torch.zeros(n)
    v[list(idx)] = torch.tensor(values if values is not None else [1.0] * len(idx))
    return v


def _unit_coords(layout: Layout, layer: int, unit: int) -> tuple[list[int], list[int]]:
    """Flat indices of hidden unit `unit` after weight layer `layer`: its incoming row, its outgoing column."""
    if not 0 <= layer < len(layout) - 1:
        raise ValueError(f"mirror.layer: hidden layers are 0..{len(layout) - 2}, got {layer}")
    off = offsets(layout)
    (h, d), (m, _) = layout[layer], layout[layer + 1]
    if not 0 <= unit < h:
        raise ValueError(f"mirror.unit: layer {layer} has {h} units, got {unit}")
    incoming = [off[layer] + unit * d + j for j in range(d)]
    outgoing = [off[layer + 1] + i * h + unit for i in range(m)]
    return incoming, outgoing


def rescaling_mirror(layout: Layout, layer: int, unit: int) -> torch.Tensor:
    """O (n, r): one column per weight of the unit; the reflection negates them all."""
    inc, out = _unit_coords(layout, layer, unit)
    n = n_params(layout)
    return torch.stack([_unit(n, [i]) for i in inc + out], 1)


def rotation_mirror(layout: Layout, layer: int, direction: torch.Tensor) -> torch.Tensor:
    """O (n, d + m): columns e_row (x) n for the incoming matrix and n (x) e_col for the outgoing one."""
    off = offsets(layout)
    (h, d), (m, _) = layout[layer], layout[layer + 1]
    nvec = direction / direction.norm()
    cols = []
    for j in range(d):  # W_in (h, d): column j reflected along n
        v = torch.zeros(n_params(layout))
        v[off[layer] + torch.arange(h) * d + j] = nvec
        cols.append(v)
    for i in range(m):  # W_out (m, h): row i reflected along n
        v = torch.zeros(n_params(layout))
        v[off[layer + 1] + i * h + torch.arange(h)] = nvec
        cols.append(v)
    return torch.stack(cols, 1)


def permutation_mirror(layout: Layout, layer: int, a: int, b: int) -> torch.Tensor:
    """O (n, d + m): columns (e_{a,k} - e_{b,k}) / sqrt(2) over the weights of units a and b."""
    inc_a, out_a = _unit_coords(layout, layer, a)
    inc_b, out_b = _unit_coords(layout, layer, b)
    n = n_params(layout)
    s = 1 / math.sqrt(2)
    return torch.stack([_unit(n, [i, j], [s, -s]) for i, j in zip(inc_a + out_a, inc_b + out_b)], 1)


def reflect(theta: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """(I - 2 O O^T) theta."""
    return theta - 2 * o @ (o.T @ theta)


def mirror_gap(loss: Callable, theta: torch.Tensor, o: torch.Tensor) -> float:
    """|l(reflected) - l(theta)| / |l(theta)|: 0 (to rounding) exactly when O is a mirror symmetry at theta."""
    base = loss(theta)
    return float((loss(reflect(theta, o)) - base).abs() / base.abs().clamp_min(1e-30))


def constraint_norm(theta: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """|O^T theta|: 0 on the mirror, where the symmetry's constraint holds."""
    return (o.T @ theta).norm(dim=0)


class MirrorConstraint(Metric):
    """sym/mirror_constraint: |O^T theta| for the mirrors the task declares (task.mirror_constraints() ->
    {name: (K,) tensor}); the main key is their mean, each mirror family also gets its own key."""

    @torch.no_grad()
    def __call__(self, task, computed):
        if not hasattr(task, "mirror_constraints"):
            raise ValueError("metric.mirror_constraint: this task declares no mirrors (needs mirror_constraints())")
        per = task.mirror_constraints()
        out = {"sym/mirror_constraint": torch.stack(list(per.values())).mean(0)}
        out.update({f"sym/mirror_constraint/{k}": v for k, v in per.items()})
        return out
