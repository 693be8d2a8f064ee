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


def masked_median_max(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and max over the last axis restricted to mask (NaN where nothing is active)."""
    nan = torch.full_like(values, float("nan"))
    masked = torch.where(mask, values, nan)
    med = median(masked, -1)
    mx = torch.where(mask, values, torch.full_like(values, -float("inf"))).amax(-1)
    mx = torch.where(mask.any(-1), mx, torch.full_like(mx, float("nan")))
    return med, mx
