"""Permutation-symmetric states (seed 002 Sec. 4; seed 004's homogeneous ensembles): hidden units whose
parameter vectors (incoming weights, bias, outgoing weights) coincide. Gradient methods cannot separate
them, so every extra copy in a group is a unit the network has lost."""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components


def duplicate_groups(units: torch.Tensor, tol: float, offset: float = 0.0) -> list[list[int]]:
    """Groups (size >= 2, ascending indices) of rows of ``units`` (U, D) that are within
    tol * (offset + max(|u_i|, |u_j|)) of each other, chained transitively (connected components)."""
    u = units.detach().double()
    if u.shape[0] < 2:
        return []
    gram = u @ u.T  # float64: |u_i - u_j|^2 = |u_i|^2 + |u_j|^2 - 2 u_i.u_j is exact enough for tol >= 1e-7
    sq = gram.diagonal()
    dist2 = (sq[:, None] + sq[None, :] - 2 * gram).clamp_min(0)
    norm = sq.sqrt()
    close = dist2 <= (tol * (offset + torch.maximum(norm[:, None], norm[None, :]))).square()
    close.fill_diagonal_(False)
    if not bool(close.any()):
        return []
    n, labels = connected_components(csr_matrix(close.cpu().numpy()), directed=False)
    counts = np.bincount(labels, minlength=n)
    return [np.flatnonzero(labels == g).tolist() for g in np.flatnonzero(counts > 1)]


def collapsed_units(groups: list[list[int]]) -> int:
    """Units that are copies of another: sum over groups of (size - 1)."""
    return sum(len(g) - 1 for g in groups)
