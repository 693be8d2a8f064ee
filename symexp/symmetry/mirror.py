"""First-layer mirror-atom diagnostics (seed 000): for every atom sigma(a_j^T x + b_j) find its nearest
mirror (-a_j, b_j) among the atoms and compare their outgoing coefficients."""

from __future__ import annotations

import torch

from symexp.stats import median


def nearest_mirrors(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the atom nearest to each atom's mirror and the distance: a (..., W, d), b (..., W)."""
    atoms = torch.cat([a, b[..., None]], -1)
    mirrors = torch.cat([-a, b[..., None]], -1)
    dist = torch.cdist(mirrors, atoms, compute_mode="donot_use_mm_for_euclid_dist")
    d, idx = dist.min(-1)
    return idx, d


def gather_atoms(c: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """c (..., W, r) reindexed by idx (..., W)."""
    return torch.gather(c, -2, idx[..., None].expand(*idx.shape, c.shape[-1]))


def mirror_mismatch(c: torch.Tensor, idx: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Median over atoms of |c_jbar - c_j| / (|c_j| + |c_jbar|): 0 for matched outgoing weights, 1 for
    opposite ones. c (..., W, r) -> (...)."""
    c_bar = gather_atoms(c, idx)
    rel = (c_bar - c).norm(dim=-1) / (c.norm(dim=-1) + c_bar.norm(dim=-1) + eps)
    return median(rel, -1)


def mirror_correlation(c: torch.Tensor, idx: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pearson correlation between the outgoing coefficients of atoms and of their nearest mirrors,
    pooled over atoms and bottleneck coordinates. c (..., W, r) -> (...)."""
    x = c.flatten(-2)
    y = gather_atoms(c, idx).flatten(-2)
    x = x - x.mean(-1, keepdim=True)
    y = y - y.mean(-1, keepdim=True)
    return (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1) + eps)
