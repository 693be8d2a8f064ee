"""Rank measures on hand-built matrices of known rank and spectrum."""

from __future__ import annotations

import math

import pytest
import torch

from symexp.symmetry import rank as R


def _rank_r(n: int, units: int, r: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, r, generator=g, dtype=torch.float64) @ torch.randn(r, units, generator=g, dtype=torch.float64)


def test_covariance_rank_and_low_rankness():
    f = torch.stack([_rank_r(200, 10, 3), _rank_r(200, 10, 7, 1)])
    assert R.covariance_rank(f).tolist() == [3, 7]
    assert R.low_rankness(f).tolist() == pytest.approx([0.7, 0.3])
    # a constant offset is removed by centring; tolerance cuts small directions
    g = torch.zeros(100, 4, dtype=torch.float64) + 5.0
    g[:, 0] = torch.linspace(-1, 1, 100)
    g[:, 1] = 1e-3 * torch.linspace(-1, 1, 100).flip(0) ** 3
    assert R.covariance_rank(g, tol=1e-4).item() == 1
    assert R.covariance_rank(g, tol=1e-9).item() == 2
    assert R.covariance_rank(g, tol=1e-2, relative=True).item() == 1


def _with_singular_values(sv: list[float], n: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    q1, _ = torch.linalg.qr(torch.randn(n, len(sv), dtype=torch.float64, generator=g))
    q2, _ = torch.linalg.qr(torch.randn(len(sv), len(sv), dtype=torch.float64, generator=g))
    return q1 @ torch.diag(torch.tensor(sv, dtype=torch.float64)) @ q2.T


def test_effective_and_approximate_ranks():
    f = _with_singular_values([1.0, 1.0, 1.0, 1.0, 0.0])
    assert R.effective_rank(f).item() == pytest.approx(4.0, rel=1e-5)
    sv = [3.0, 2.0, 1.0, 0.1]
    f = _with_singular_values(sv)
    p = torch.tensor(sv) / sum(sv)
    assert R.effective_rank(f).item() == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)
    # squared: 9, 4, 1, 0.01 -> cumulative 9/14.01=0.642, 13/14.01=0.928, 14/14.01=0.9993 -> k = 3
    assert R.approximate_rank(f).item() == 3
    # abs: 3, 2, 1, 0.1 -> 0.492, 0.820, 0.984, 1 -> k = 4
    assert R.abs_approximate_rank(f).item() == 4
    assert R.abs_approximate_rank(f, threshold=0.98).item() == 3


def test_dead_units_symmetry_degree_dead_coordinates():
    f = torch.relu(torch.randn(50, 6))
    f[:, [1, 4]] = 0.0
    f[0, 4] = 1e-8  # alive on one sample: not dead
    assert R.dead_units(f).item() == 1
    vecs = torch.eye(4)
    w = torch.tensor([[0.0, 0.05, 0.2, -0.01], [1.0, 1.0, 1.0, 1.0]])
    assert R.symmetry_degree(w, vecs, c_th=0.1).tolist() == [3, 0]
    rot = torch.linalg.qr(torch.randn(4, 4))[0]
    assert R.symmetry_degree((rot @ torch.tensor([0.0, 0.0, 1.0, 2.0]))[None], rot, 1e-5).item() == 2
    u = torch.tensor([[0.0, 1.0, 1e-4], [1.0, 1.0, 1.0]])
    w2 = torch.tensor([[0.0, 0.0, -1e-4], [0.0, 1.0, 1.0]])
    assert R.dead_coordinates(u, w2).tolist() == [2, 0]
