"""Every syre_* preset smoke-runs through the real pipeline; the ridge run matches its closed form; the
symmetry benchmark's objective and degree of symmetry behave as constructed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from symexp.models.objectives import RidgeSweep, SymmetryBenchmark
from symexp.run import run
from tests.conftest import compose_cfg

SMALL = {
    "syre_symbench": ["model.dim=100"],
    "syre_reparam": ["data.dim=50"],
    "syre_ridge": ["data.dim=40", "data.n_train=20", "data.n_val=100", "model.dims=[5,20,40]"],
    "syre_teacher_student": ["data.n_train=200", "data.n_val=100", "model.width=30"],
}
KEYS = {
    "syre_symbench": ["sym/symmetry_degree", "train/objective_gap"],
    "syre_reparam": ["sym/dead_coordinates", "test/mse"],
    "syre_ridge": ["ridge/closed_form_gap", "test/mse/d20"],
    "syre_teacher_student": ["rank/covariance_rank/hidden", "test/accuracy"],
}


def _results(path: Path) -> dict:
    return json.loads(next(path.rglob("results.json")).read_text())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_preset_smoke(name, tmp_outputs, tmp_path):
    run(compose_cfg([f"experiment={name}", "budget=smoke", *SMALL[name]] + tmp_outputs))
    res = _results(tmp_path)
    assert res["status"] == "ok", res["error"]
    for key in KEYS[name]:
        assert key in res["metrics"], key
    assert (tmp_path / "runs").exists() and list(tmp_path.rglob("figures/curves.png"))


@pytest.mark.slow
@pytest.mark.parametrize("syre", ["static_bias", "off"])
def test_ridge_reaches_closed_form(syre, tmp_outputs, tmp_path):
    over = ["experiment=syre_ridge", "budget=smoke", f"syre={syre}", "data.dim=30", "data.n_train=20",
            "data.n_val=50", "model.dims=[5,30]", "task.steps=3000", "task.log_every=3000",
            "task.optimizer.lr=0.05", "task.optimizer.weight_decay=0.1", "ensemble.size=1"]
    if syre == "static_bias":
        over += ["syre.sigma0=0.5"]
    run(compose_cfg(over + tmp_outputs))
    m = _results(tmp_path)["metrics"]
    assert m["ridge/closed_form_gap"] < 1e-3
    if syre == "static_bias":
        assert m["ridge/theta0_shift"] > 1e-2  # theta0 really moves the solution (so the check has teeth)


def test_ridge_closed_form_is_stationary():
    model = RidgeSweep(6, [3, 6], seeds=[0])
    x, y = torch.randn(1, 10, 6), torch.randn(1, 10)
    t0 = torch.randn(1, 2, 6)
    phi = model.closed_form(x, y, gamma=2.0, theta0=t0)
    for m, d in enumerate([3, 6]):
        X, p = x[0, :, :d].double(), phi[0, m, :d]
        grad = X.T @ (X @ p - y[0].double()) + 2.0 * (p - t0[0, m, :d].double())
        assert grad.abs().max() < 1e-9


def test_symmetry_benchmark_constructed_points():
    bench = SymmetryBenchmark(dim=8, structure="structured", seeds=[0])
    lam = bench.eigvals[0]
    top = int(lam.argmax())
    w = torch.zeros(1, 8)
    w[0, top] = (lam[top] / 2).sqrt()
    torch.testing.assert_close(bench.objective(w), bench.optimum())  # the global minimum
    bench.params[0].data.copy_(w)
    _, vecs, c_th = bench.symmetry_point()
    assert c_th == 0.1 and bench.curves(None)["sym/symmetry_degree"].item() == 7  # on 7 of 8 mirrors
    un = SymmetryBenchmark(dim=8, structure="unstructured", seeds=[0])
    v = un.eigvecs[0]
    w = (v[:, -1] * (un.eigvals[0, -1] / 2).sqrt())[None]
    torch.testing.assert_close(un.objective(w), un.optimum(), rtol=1e-4, atol=1e-4)
    reflected = w - 2 * (w @ v[:, 0:1]) * v[:, 0]
    torch.testing.assert_close(un.objective(reflected), un.objective(w), rtol=1e-5, atol=1e-5)


def test_symmetry_benchmark_gradient_is_the_plain_formulas():
    """The one-pass objective (B read once for value and gradient) has the value and gradient of
    (w^T w)^2 - w^T B w, i.e. 4 |w|^2 w - 2 B w, for both structures."""
    for structure in ("unstructured", "structured"):
        bench = SymmetryBenchmark(dim=6, structure=structure, seeds=[0, 1]).double()
        w = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
        B = bench.B if structure == "unstructured" else torch.diag_embed(bench.b_diag)
        value = bench.objective(w)
        (grad,) = torch.autograd.grad(value.sum(), w)
        plain = w.detach().square().sum(-1).square() - torch.einsum("ki,kij,kj->k", w.detach(), B, w.detach())
        expected = 4 * w.detach().square().sum(-1, keepdim=True) * w.detach() - 2 * torch.einsum("kij,kj->ki", B, w.detach())
        torch.testing.assert_close(value.detach(), plain)
        torch.testing.assert_close(grad, expected)
