"""Proposition 1 of seed 000 evaluated on a trained first layer.

For p(x) = sum_j c_j sigma(a_j^T x + b_j) and a pairing j -> pi(j) of atoms with their mirrors,
|p(x) - p(-x)| <= eta sum_j |sigma(a_j^T x + b_j)| + C W (delta_a R + delta_b).
The proof needs pi to be a bijection, so we pair atoms by an optimal assignment (Hungarian algorithm)
rather than by nearest neighbours, which may map two atoms to one mirror.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from scipy.optimize import linear_sum_assignment


def mirror_assignment(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A permutation pi (W,) minimising sum_j |(a_pi(j), b_pi(j)) - (-a_j, b_j)|. a (W, d), b (W,)."""
    atoms = torch.cat([a, b[:, None]], -1)
    mirrors = torch.cat([-a, b[:, None]], -1)
    cost = torch.cdist(mirrors.double(), atoms.double()).cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    perm = torch.empty(a.shape[0], dtype=torch.long)
    perm[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perm.to(a.device)


def prop1_terms(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    perm: torch.Tensor,
    x: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor] = torch.relu,
    radius: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(bound, observed), both (n, r): the right-hand side of Proposition 1 and |p(x) - p(-x)| at every
    point x (n, d) for every coordinate of c (W, r). sigma must be 1-Lipschitz."""
    radius = float(x.norm(dim=-1).max()) if radius is None else radius
    atoms = act(x @ a.T + b)  # (n, W)
    p = atoms @ c
    p_neg = act(-x @ a.T + b) @ c
    observed = (p - p_neg).abs()
    eta = (c[perm] - c).abs().amax(0)  # (r,)
    big_c = c.abs().amax(0)  # (r,)
    delta_a = (a[perm] + a).norm(dim=-1).max()
    delta_b = (b[perm] - b).abs().max()
    width = a.shape[0]
    bound = eta * atoms.abs().sum(-1, keepdim=True) + big_c * width * (delta_a * radius + delta_b)
    return bound, observed
