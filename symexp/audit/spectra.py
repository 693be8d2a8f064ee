"""Singular values of weight and feature matrices through their Gram matrix (eigvalsh of the smaller
side, float64): the same values as an SVD at a fraction of its cost, so a ResNet18 is audited in
seconds. The rank measures themselves are symexp.symmetry.rank's (its singular-value entry points)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from symexp.symmetry import rank as R


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """LAPACK's eigensolver on matrices of a few hundred rows gains nothing from threads and, on a busy
    shared CPU, multi-threaded calls measured 10-100x slower than one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def singular_values(mat: torch.Tensor) -> torch.Tensor:
    """Descending singular values of a 2-D matrix (min(m, n) of them)."""
    m = mat.detach().double()
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    with one_thread():
        ev = torch.linalg.eigvalsh(gram)
    return ev.flip(0).clamp_min(0).sqrt()


def rank_measures(sv: torch.Tensor, rtol: float, threshold: float) -> dict[str, float]:
    """Numerical rank (sv above rtol * the largest), effective rank (exp entropy of sv / sum sv) and
    approximate rank (smallest k with threshold of sum sv^2), Dohare et al.'s definitions."""
    if sv.numel() == 0 or float(sv.max()) == 0.0:
        return {"numerical_rank": 0.0, "effective_rank": 0.0, "approximate_rank": 0.0}
    return {
        "numerical_rank": float((sv > rtol * sv.max()).sum()),
        "effective_rank": float(R.effective_rank_of_svals(sv)),
        "approximate_rank": float(R.approximate_rank_of_svals(sv, threshold)),
    }


def default_rtol(shape: tuple[int, int], dtype: torch.dtype = torch.float32) -> float:
    """torch.linalg.matrix_rank's default: max(m, n) * eps of the weights' dtype."""
    eps = torch.finfo(dtype if dtype.is_floating_point else torch.float32).eps
    return max(shape) * eps
