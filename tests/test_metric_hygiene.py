"""Metric hygiene across families: one (midpoint) median, null levels beside the mirror metrics, no
self-pairs, in-distribution test error, rank of dead layers, one rank implementation and tolerance."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from symexp.run import _summary, run
from symexp.symmetry import rank as R
from symexp.symmetry import representation
from symexp.symmetry.callback import median as callback_median
from symexp.symmetry.defects import masked_median_max
from symexp.symmetry.mirror import (
    mirror_correlation,
    mirror_correlation_centred,
    mirror_mismatch,
    mirror_null,
    nearest_mirrors,
)
from tests.conftest import ROOT, compose_cfg


# ------------------------------------------------------------------------------------------ one median
def test_the_median_of_an_even_count_is_the_midpoint_everywhere():
    from symexp.stats import median

    four = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert float(median(four)) == 2.5
    assert callback_median(four) == 2.5, "W&B curves and results.json"
    members = [{"seed": s, "status": "ok", "metrics": {"m": float(s + 1)}} for s in range(4)]
    assert _summary(members)["m"] == 2.5, "results.json summary over members"
    med, _ = masked_median_max(torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0]), torch.tensor([True] * 4 + [False]))
    assert float(med) == 2.5, "median over active partials"
    # mirror mismatch: rel = 0, 1/3, 1/2, 1 for four atoms paired with a fixed index
    c = torch.tensor([[1.0], [1.0], [2.0], [1.0]])
    idx = torch.tensor([0, 2, 3, 1])
    rel = [0.0, 1 / 3, 1 / 3, 0.0]
    assert float(mirror_mismatch(c, idx)) == pytest.approx(sorted(rel)[1] / 2 + sorted(rel)[2] / 2)


def test_no_second_median_in_the_package():
    """Every median in symexp goes through symexp.stats.median (torch's .median() is the lower one)."""
    pattern = re.compile(r"\.median\(|nanmedian|np\.median|statistics\.median|torch\.median")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "symexp").rglob("*.py") if p.name != "stats.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders


# ------------------------------------------------------------------------------------------ mirror nulls
def test_an_atom_is_never_its_own_mirror():
    # atom 0 has a = 0: it is exactly its own mirror and would score 0 trivially
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 0.1]])
    b = torch.tensor([0.5, 0.0, 0.0, 0.45])
    idx, dist = nearest_mirrors(a, b)
    assert (idx != torch.arange(4)).all()
    assert idx[0] == 3 and dist[0] > 0


def test_mirror_null_levels_separate_signal_from_baseline():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 2, generator=g)
    b = torch.randn(64, generator=g)
    c = torch.randn(64, 3, generator=g)
    a, b, c = torch.cat([a, -a]), torch.cat([b, b]), torch.cat([c, c])
    idx, _ = nearest_mirrors(a, b)
    assert float(mirror_mismatch(c, idx)) < 1e-6
    null = mirror_null(c)
    assert 0.5 < float(null["mismatch"]) < 0.9, "random pairing of outgoing weights"
    assert abs(float(null["corr_centred"])) < 0.15
    # a shared column mean makes the pooled correlation positive for random pairs; centring removes it
    shifted = c + torch.tensor([3.0, -3.0, 0.0])
    perm = torch.randperm(128, generator=g)
    assert float(mirror_correlation(shifted, perm)) > 0.5
    assert abs(float(mirror_correlation_centred(shifted, perm))) < 0.2
    assert float(mirror_correlation_centred(shifted, idx)) > 0.999


# ------------------------------------------------------------------------------------------ ranks
def test_rank_of_an_all_zero_feature_matrix_is_zero():
    z = torch.zeros(2, 50, 16)
    assert R.approximate_rank(z).tolist() == [0, 0]
    assert R.abs_approximate_rank(z).tolist() == [0, 0]
    assert R.effective_rank(z).tolist() == [0, 0]
    assert R.covariance_rank(z).tolist() == [0, 0]
    one_alive = torch.zeros(50, 16)
    one_alive[:, 3] = torch.linspace(0, 1, 50)
    assert R.abs_approximate_rank(one_alive).item() == 1


def test_one_covariance_rank_implementation_and_tolerance():
    """representation.py reuses symmetry.rank (no second definition), with one default tolerance."""
    for name in ("covariance_rank", "low_rankness", "effective_rank", "covariance_eigenvalues"):
        assert not hasattr(representation, name) or getattr(representation, name) is getattr(R, name)
    f = torch.zeros(200, 3, dtype=torch.float64)
    f[:, 0] = torch.linspace(-1, 1, 200)
    f[:, 1] = 1.5e-2 * torch.linspace(-1, 1, 200).flip(0) ** 3  # eigenvalue ~5e-5: between 1e-5 and 1e-4
    ranks = representation.layer_ranks({"x": f})
    assert ranks["rank/x/cov_rank"] == R.covariance_rank(f).item()
    assert R.low_rankness(f).item() == pytest.approx(1 - R.covariance_rank(f).item() / 3)
    assert R.COV_TOL == 1e-4


def test_conv_features_have_one_convention():
    from symexp.symmetry.rank_metrics import _as_features

    conv = torch.randn(8, 3, 4, 4)
    flat = _as_features(conv, members=1)
    assert flat.shape == (1, 8, 48), "samples x (C*H*W), as representation.capture"
    assert torch.equal(flat[0], R.feature_matrix(conv))


# ------------------------------------------------------------------------------------------ test error
def test_positive_bias_runs_report_the_in_distribution_test_error(tmp_path, tmp_outputs):
    tiny = ["model.width=32", "model.rank=4", "model.depth=1", "data=gauss2d", "data.n_train=16",
            "data.n_val=16", "data.grid_points=11", "task.epochs=2", "task.val_every=1",
            "data.sampling=positive_bias"]
    run(compose_cfg(tiny + tmp_outputs))
    (res,) = list(Path(tmp_path).rglob("results.json"))
    m = json.loads(res.read_text())["metrics"]
    assert "test/mse_indist" in m and m["test/mse_indist"] > 0
    assert m["test/mse_indist"] != m["test/mse"]
    assert "sym/mirror_mismatch_null" in m and "sym/mirror_corr_centred" in m
