"""seed 002's symmetry degree with per-member eigenbases (the unstructured benchmark's ensemble layout)."""

from __future__ import annotations

import torch

from symexp.symmetry import rank as R


def test_symmetry_degree_pairs_each_member_with_its_own_eigenvectors() -> None:
    g = torch.Generator().manual_seed(0)
    q0, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    q1, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    # member 0 lies on its own v_0 (5 reflections hold), member 1 on v_0 + v_1 of its own basis (4 hold)
    w = torch.stack([q0[:, 0], q1[:, 0] + q1[:, 1]])
    vecs = torch.stack([q0, q1])
    assert R.symmetry_degree(w, vecs, 1e-5).tolist() == [5.0, 4.0]
    # a shared (d, d) basis still works
    assert R.symmetry_degree(w[:1], q0, 1e-5).tolist() == [5.0]
