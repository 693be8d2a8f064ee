"""Symmetric regression targets of seed 000 on [-1, 1]^d, each declaring the transforms it is
invariant under (the default evaluated transform is x -> -x)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Target:
    """A scalar function with its symmetry transforms."""

    dim: int = 1
    symmetries: tuple[str, ...] = ("neg",)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (..., d) -> (...)
        raise NotImplementedError


class SumOfCosines(Target):
    """g_m(x) = sum_q alpha_q cos(omega_q x): even, as in seed 000's 1D reruns."""

    dim = 1
    symmetries = ("neg",)

    def __init__(self, frequencies: Sequence[float], coefficients: Sequence[float]) -> None:
        if len(frequencies) != len(coefficients):
            raise ValueError("data.target.coefficients: need one coefficient per frequency")
        self.omega = torch.tensor(list(frequencies), dtype=torch.float32)
        self.alpha = torch.tensor(list(coefficients), dtype=torch.float32)

    def __call__(self, x):
        return (self.alpha.to(x) * torch.cos(x * self.omega.to(x))).sum(-1)


def _all_axis_symmetries(dim: int, permutations: bool) -> tuple[str, ...]:
    names = ["neg"] + [f"reflect{i}" for i in range(dim)]
    if permutations:
        names += [f"swap{i}{j}" for i in range(dim) for j in range(i + 1, dim)]
    return tuple(names)


class Gaussian(Target):
    """exp(-|x|^2 / (2 s^2)): invariant under negation, axis reflections and permutations."""

    def __init__(self, dim: int, scale: float = 0.5) -> None:
        self.dim, self.scale = dim, scale
        self.symmetries = _all_axis_symmetries(dim, permutations=True)

    def __call__(self, x):
        return torch.exp(-x.square().sum(-1) / (2 * self.scale**2))


class Quadratic(Target):
    """sum_i q_i x_i^2 with distinct q_i: negation and axis reflections, no permutations."""

    def __init__(self, dim: int, weights: Sequence[float] | None = None) -> None:
        self.dim = dim
        self.q = torch.tensor(list(weights) if weights is not None else [1.0 / (i + 1) for i in range(dim)])
        if len(self.q) != dim:
            raise ValueError(f"data.target.weights: need {dim} weights, got {len(self.q)}")
        self.symmetries = _all_axis_symmetries(dim, permutations=False)

    def __call__(self, x):
        return (self.q.to(x) * x.square()).sum(-1)


class SoftAxis(Target):
    """A soft cylinder around the last axis, 1 / (1 + exp((x_1^2 + x_2^2 - rho^2) / tau)) * cos(pi x_3 / 2):
    seed 000's harder 3D target; symmetric under negation, reflections and swapping the first two axes."""

    def __init__(self, dim: int = 3, radius: float = 0.5, sharpness: float = 0.05) -> None:
        if dim != 3:
            raise ValueError("data.dim: the soft-axis target is three-dimensional")
        self.dim, self.radius, self.sharpness = dim, radius, sharpness
        self.symmetries = ("neg", "reflect0", "reflect1", "reflect2", "swap01")

    def __call__(self, x):
        r2 = x[..., 0] ** 2 + x[..., 1] ** 2
        return torch.sigmoid((self.radius**2 - r2) / self.sharpness) * torch.cos(torch.pi * x[..., 2] / 2)
