"""Rank and collapse measures of feature matrices: pure functions on (n, units) or (K, n, units) tensors
(K ensemble members), returning one value per member. The one implementation in symexp (the vision,
VAE, SimCLR and PPO tasks and both metric groups use it).

Definitions: Dohare et al.'s ranks (sv = singular values of the samples x units feature matrix, not
centred): effective rank exp(-sum p log p) with p = sv / sum sv, approximate rank (99% of sum sv^2),
abs approximate rank (99% of sum sv), dead units; seed 002's covariance rank (eigenvalues of the centred
covariance above ``COV_TOL`` = 1e-4, its Figs. 5, 11, 12) and low-rankness (the collapsed fraction).
A layer with no signal (all-zero features, e.g. every ReLU dead) has rank 0 under every measure.

Feature convention (``feature_matrix``): a layer's output for one sample is one row; a conv map
(n, C, H, W) flattens to (n, C*H*W), every activation a unit, so "the rank of the convolution layer's
output with batch size 1000" (seed 002, Fig. 11) is over 1000 samples."""

from __future__ import annotations

import torch

COV_TOL = 1e-4  # seed 002: covariance eigenvalues below 1e-4 are set to zero (Figs. 5, 11, 12)


def feature_matrix(out: torch.Tensor) -> torch.Tensor:
    """One layer output as a samples x units matrix: (n, ...) -> (n, prod(...)) (conv maps: C*H*W)."""
    return out.flatten(1) if out.dim() > 2 else out


def _batched(features: torch.Tensor) -> torch.Tensor:
    if features.dim() == 2:
        return features[None]
    if features.dim() != 3:
        raise ValueError(f"features must be (n, units) or (K, n, units), got {tuple(features.shape)}")
    return features


def covariance_eigenvalues(features: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (descending) of the centred feature covariance, (K, units)."""
    f = _batched(features).double()
    f = f - f.mean(1, keepdim=True)
    cov = f.transpose(1, 2) @ f / max(f.shape[1], 1)
    return torch.linalg.eigvalsh(cov).flip(-1).clamp_min(0)


def covariance_rank(features: torch.Tensor, tol: float = COV_TOL, relative: bool = False) -> torch.Tensor:
    """Number of covariance eigenvalues above tol (times the largest one when relative), (K,); 0 for
    features without variance."""
    ev = covariance_eigenvalues(features)
    thr = tol * ev[:, :1] if relative else torch.full_like(ev[:, :1], tol)
    return ((ev > thr) & (ev[:, :1] > 0)).sum(1).float()


def low_rankness(features: torch.Tensor, tol: float = COV_TOL, relative: bool = False) -> torch.Tensor:
    """Fraction of collapsed feature dimensions, 1 - covariance_rank / units, (K,)."""
    return 1.0 - covariance_rank(features, tol, relative) / _batched(features).shape[-1]


def _svals(features: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(_batched(features).double())


def effective_rank(features: torch.Tensor) -> torch.Tensor:
    """exp(-sum p log p), p = sv / sum(sv) (0 log 0 = 0), (K,)."""
    return effective_rank_of_svals(_svals(features))


def effective_rank_of_svals(sv: torch.Tensor) -> torch.Tensor:
    """effective_rank from singular values (..., k) already at hand (e.g. from a Gram matrix); 0 when
    all are 0."""
    total = sv.sum(-1, keepdim=True)
    p = sv / total.clamp_min(1e-300)
    erank = torch.exp(-torch.special.xlogy(p, p).sum(-1))
    return torch.where(total[..., 0] > 0, erank, torch.zeros_like(erank)).float()


def _smallest_k(weights: torch.Tensor, threshold: float) -> torch.Tensor:
    """Smallest k whose leading weights reach ``threshold`` of the total; 0 when the total is 0 (no
    direction carries any signal: a fully dead layer has rank 0, not full width)."""
    total = weights.sum(-1, keepdim=True)
    frac = weights.cumsum(-1) / total.clamp_min(1e-300)
    # smallest k with frac_k >= threshold (tiny slack for round-off at exactly the threshold)
    k = ((frac < threshold - 1e-12).sum(-1) + 1).clamp(max=weights.shape[-1])
    return torch.where(total[..., 0] > 0, k, torch.zeros_like(k)).float()


def approximate_rank(features: torch.Tensor, threshold: float = 0.99) -> torch.Tensor:
    """Smallest k with sum_{i<=k} sv_i^2 / sum sv^2 >= threshold, (K,)."""
    return approximate_rank_of_svals(_svals(features), threshold)


def approximate_rank_of_svals(sv: torch.Tensor, threshold: float = 0.99) -> torch.Tensor:
    """approximate_rank from descending singular values (..., k) already at hand."""
    return _smallest_k(sv.square(), threshold)


def abs_approximate_rank(features: torch.Tensor, threshold: float = 0.99) -> torch.Tensor:
    """Smallest k with sum_{i<=k} sv_i / sum sv >= threshold, (K,)."""
    return _smallest_k(_svals(features), threshold)


def dead_units(features: torch.Tensor) -> torch.Tensor:
    """Units whose activation is exactly zero on the whole batch, (K,)."""
    return (_batched(features) == 0).all(1).sum(-1).float()


def symmetry_degree(w: torch.Tensor, eigvecs: torch.Tensor, c_th: float) -> torch.Tensor:
    """Seed 002's benchmark: number of reflection symmetries P_i w = w - 2 (v_i^T w) v_i that w (nearly)
    sits on, sum_i 1{|v_i^T w| < c_th}; w (K, d), eigvecs (K, d, d) or (d, d) with v_i as columns."""
    # per-member eigenvectors must pair with their own member (an ellipsis here would sum over members)
    proj = torch.einsum("kd,kde->ke", w, eigvecs) if eigvecs.dim() == 3 else w @ eigvecs
    return (proj.abs() < c_th).sum(-1).float()


def dead_coordinates(u: torch.Tensor, w: torch.Tensor, tol: float = 1e-3) -> torch.Tensor:
    """Reparametrized regression (u * w)^T x: coordinates with |u_i| < tol and |w_i| < tol (the symmetric,
    low-capacity state u_i = w_i = 0), (K,) for (K, d) inputs."""
    return ((u.abs() < tol) & (w.abs() < tol)).sum(-1).float()
