"""Relative symmetry defects of seed 000: D(T) = E[(f(x) - f(Tx))^2] / (E[f(x)^2] + eps) over a grid
closed under T, for the output and for every internal partial function."""

from __future__ import annotations

import torch

from symexp.stats import median


def relative_defect(f: torch.Tensor, f_t: torch.Tensor, eps: float = 1e-12, dim: int = -1) -> torch.Tensor:
    """D for values f = f(x) and f_t = f(Tx) on the grid points along ``dim``."""
    return (f - f_t).square().mean(dim) / (f.square().mean(dim) + eps)


def active_partials(p: torch.Tensor, tau: float) -> torch.Tensor:
    """Active = variance on the grid above tau times the largest variance in the block.
    p (..., n, r) -> bool (..., r). A block whose partials are all constant has none active."""
    var = p.var(-2, unbiased=False)
    top = var.amax(-1, keepdim=True)
    return (var > tau * top) & (top > 0)


def partial_defects(p: torch.Tensor, p_t: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-partial defects (..., r) from partial values (..., n, r) at x and at Tx."""
    return relative_defect(p, p_t, eps, dim=-2)


def pooled_defect(p: torch.Tensor, p_t: torch.Tensor, mask: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The block's active partials taken as one vector function: sum_k E[(p_k(x) - p_k(Tx))^2] over
    sum_k E[p_k(x)^2], k active. Unlike the median it weighs partials by their size, so a few large
    asymmetric ones show. p, p_t (..., n, r), mask (..., r) -> (...); NaN where nothing is active."""
    num = ((p - p_t).square().mean(-2) * mask).sum(-1)
    den = (p.square().mean(-2) * mask).sum(-1)
    out = num / (den + eps)
    return torch.where(mask.any(-1), out, torch.full_like(out, float("nan")))


def masked_median_max(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and max over the last axis restricted to mask (NaN where nothing is active)."""
    nan = torch.full_like(values, float("nan"))
    masked = torch.where(mask, values, nan)
    med = median(masked, -1)
    mx = torch.where(mask, values, torch.full_like(values, -float("inf"))).amax(-1)
    mx = torch.where(mask.any(-1), mx, torch.full_like(mx, float("nan")))
    return med, mx
