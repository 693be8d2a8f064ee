"""First-layer mirror-atom diagnostics (seed 000): for every atom sigma(a_j^T x + b_j) find its nearest
mirror (-a_j, b_j) among the *other* atoms and compare their outgoing coefficients.

An atom is never its own mirror: one with a_j ~ 0 would otherwise pair with itself and score a perfect 0.
The diagnostics come with null levels, the same statistics for a random pairing of atoms (a fixed
derangement per draw), because the mismatch of unrelated coefficient vectors is far from 1 (~0.7 for
Gaussian ones) and a pooled correlation picks up any shared per-coordinate mean."""

from __future__ import annotations

import torch

from symexp.stats import median

NULL_DRAWS = 8  # random pairings averaged for the null levels
NULL_SEED = 0  # fixed, so the null of a given model is reproducible


def nearest_mirrors(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the other atom nearest to each atom's mirror and the distance: a (..., W, d), b (..., W)."""
    atoms = torch.cat([a, b[..., None]], -1)
    mirrors = torch.cat([-a, b[..., None]], -1)
    dist = torch.cdist(mirrors, atoms, compute_mode="donot_use_mm_for_euclid_dist")
    w = dist.shape[-1]
    if w > 1:
        dist = dist.masked_fill(torch.eye(w, dtype=torch.bool, device=dist.device), float("inf"))
    d, idx = dist.min(-1)
    return idx, d


def gather_atoms(c: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """c (..., W, r) reindexed by idx (..., W) (or by one shared (W,) index)."""
    idx = idx.expand(c.shape[:-1])
    return torch.gather(c, -2, idx[..., None].expand(*idx.shape, c.shape[-1]))


def mirror_mismatch(c: torch.Tensor, idx: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Median over atoms of |c_jbar - c_j| / (|c_j| + |c_jbar|): 0 for matched outgoing weights, 1 for
    opposite ones. c (..., W, r) -> (...)."""
    c_bar = gather_atoms(c, idx)
    rel = (c_bar - c).norm(dim=-1) / (c.norm(dim=-1) + c_bar.norm(dim=-1) + eps)
    return median(rel, -1)


def _pearson(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    return (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1) + eps)


def mirror_correlation(c: torch.Tensor, idx: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pearson correlation between the outgoing coefficients of atoms and of their nearest mirrors,
    pooled over atoms and bottleneck coordinates (one mean over everything). c (..., W, r) -> (...)."""
    x = c.flatten(-2)
    y = gather_atoms(c, idx).flatten(-2)
    return _pearson(x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True), eps)


def mirror_correlation_centred(c: torch.Tensor, idx: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """As mirror_correlation, but every bottleneck coordinate is centred by its own mean over atoms, so a
    coordinate whose coefficients share a sign does not read as mirror agreement. c (..., W, r) -> (...)."""
    cc = c - c.mean(-2, keepdim=True)
    return _pearson(cc.flatten(-2), gather_atoms(cc, idx).flatten(-2), eps)


def random_pairings(w: int, draws: int = NULL_DRAWS, seed: int = NULL_SEED) -> torch.Tensor:
    """``draws`` random derangements of W atoms (no atom paired with itself), (draws, W)."""
    g = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(w, generator=g) for _ in range(draws)])
    if w > 1:  # a random cyclic shift of the shuffled order is a derangement
        shift = torch.randint(1, w, (draws, 1), generator=g)
        order = torch.argsort(perms, -1)  # position of each atom in its permutation
        perms = torch.gather(perms, -1, (order + shift) % w)
    return perms


def mirror_null(c: torch.Tensor, draws: int = NULL_DRAWS, seed: int = NULL_SEED) -> dict[str, torch.Tensor]:
    """Null levels of the mirror diagnostics: their mean over random pairings of the atoms.
    c (..., W, r) -> {"mismatch", "corr", "corr_centred"}: (...)."""
    pairs = random_pairings(c.shape[-2], draws, seed).to(c.device)
    stats = {"mismatch": mirror_mismatch, "corr": mirror_correlation, "corr_centred": mirror_correlation_centred}
    return {k: torch.stack([fn(c, p) for p in pairs]).mean(0) for k, fn in stats.items()}
