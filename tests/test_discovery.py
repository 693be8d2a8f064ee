"""Generator learning (seed 003): recovery of a known symmetry, the JVP field, lifting, preset smoke runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from symexp.discovery import evaluate as ev
from symexp.discovery.action import GeneratorModel
from symexp.discovery.lifting import deep_forward, gl_data_action, lift_deeper, lift_wider, rescale_units, wide_forward
from symexp.discovery.losses import ObjectiveConfig, objective
from symexp.discovery.targets import TwoLayer, build_target
from symexp.discovery.train import fit_generators
from tests.conftest import compose_cfg


def _eval_set(target, n=512, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, target.n_params, generator=g), torch.randn(n, *target.x_shape, generator=g),
            torch.randn(n, *target.y_shape, generator=g), g)


def test_recovers_scalar_rescaling_symmetry():
    torch.manual_seed(0)
    target = TwoLayer(1, 1, 1, 1, "identity")
    model = GeneratorModel(k=1, kind="linear").build(target.n_params, target.x_size)
    fit_generators(model, target, ObjectiveConfig(), steps=1500, lr=1e-2)
    theta, x, y, g = _eval_set(target)
    with torch.enable_grad():
        inv = ev.invariance_errors(target, model, theta, x, y, g)
        align = ev.alignment(target, model, theta[:128], x[:128])
    assert float(align) >= 0.99
    assert float(inv["ratio"]) >= 100
    h = model.h.detach()[0]
    assert float(ev.generator_alignment(target, model)) >= 0.99  # h ∝ diag(1, -1)
    assert abs(float(h[0, 0] + h[1, 1])) < 0.05 * float(h.abs().max())


@pytest.mark.slow
def test_mlp_action_recovers_scalar_rescaling_field():
    torch.manual_seed(0)
    target = TwoLayer(1, 1, 1, 1, "identity")
    model = GeneratorModel(k=1, kind="mlp").build(target.n_params, target.x_size)
    fit_generators(model, target, ObjectiveConfig(), steps=1500, lr=1e-3)
    theta, x, _, _ = _eval_set(target)
    with torch.enable_grad():
        assert float(ev.alignment(target, model, theta[:128], x[:128])) >= 0.99


def test_hand_written_field_matches_torch_func_jvp():
    model = GeneratorModel(k=2, activation="tanh").build(6, 4)
    theta, x = torch.randn(5, 6), torch.randn(5, 4)
    assert torch.allclose(model.field(model.h[1], theta, x), model.field_jvp(model.h[1], theta, x), atol=1e-6)


def test_true_symmetry_has_zero_invariance_and_full_alignment():
    """The known tangents are exact symmetries: D_theta L along them vanishes (sigmoid, data-dependent)."""
    target = build_target("two_layer", in_dim=3, hidden=3, out_dim=1, k=1, act="sigmoid")
    theta, x, y, _ = _eval_set(target, n=8)
    grads = ev.loss_gradients(target, theta, x, y)
    for b in range(8):
        basis = target.known_tangents(theta[b], x[b])
        assert (basis @ grads[b]).abs().max() < 1e-4 * grads[b].norm()


def test_objective_terms_finite_for_every_target_and_objective():
    for kind, kw in (("two_layer", dict(in_dim=2, hidden=2, k=4, act="relu")),
                     ("three_layer_tanh_skip", {})):
        target = build_target(kind, **kw)
        model = GeneratorModel(k=2).build(target.n_params, target.x_size)
        theta, x, y, _ = _eval_set(target, n=16)
        for obj in ("infinitesimal", "exponentiated"):
            total, terms = objective(model, target, theta, x, y, ObjectiveConfig(objective=obj), step=10)
            total.backward()
            assert math.isfinite(float(total)) and float(terms["assoc"]) > 0
            assert model.h.grad is not None and torch.isfinite(model.h.grad).all()
            model.zero_grad()


def test_lifting_preserves_loss_wider_and_deeper():
    g = torch.Generator().manual_seed(0)
    b, h, n_in, m = 16, 2, 2, 1
    leaky = TwoLayer(n_in, h, m, 1, "leaky_relu")
    x = torch.randn(b, n_in, 1, generator=g)
    # wider (Cor. 4.2): rescaling of the first h units of a 5-unit ReLU block
    w1, w2 = torch.randn(b, h + 3, n_in, generator=g), torch.randn(b, m, h + 3, generator=g)
    relu = torch.relu
    t = rescale_units(torch.tensor([2.0, 0.3]))
    a1, a2 = lift_wider(t, w1, w2, x, h)
    assert torch.allclose(wide_forward(relu, a1, a2, x), wide_forward(relu, w1, w2, x), atol=1e-5)
    assert not torch.allclose(a1, w1)
    # deeper (Cor. 4.3): the data-dependent GL action of a leaky-ReLU block fed by tanh(W0 X)
    params = {"W0": torch.randn(b, n_in, n_in, generator=g), "W1": torch.randn(b, h, n_in, generator=g),
              "W2": torch.randn(b, m, h, generator=g), "W3": torch.randn(b, 1, m, generator=g)}
    gmat = torch.tensor([[1.3, 0.4], [-0.2, 0.9]])
    inv = lambda z: torch.where(z > 0, z, z / 0.1)  # noqa: E731
    lifted = lift_deeper(gl_data_action(gmat, leaky.sigma, inv), params, x)
    before, after = deep_forward(leaky.sigma, params, x), deep_forward(leaky.sigma, lifted, x)
    assert torch.allclose(before, after, atol=1e-4)
    assert not torch.allclose(lifted["W1"], params["W1"])
    # a transformation that is not a symmetry changes the loss
    broken = lift_deeper(lambda a, c, d: (a * 1.5, c), params, x)
    assert not torch.allclose(deep_forward(leaky.sigma, broken, x), before, atol=1e-3)


def test_bad_config_names_key():
    with pytest.raises(ValueError, match="^data.target.act"):
        build_target("two_layer", act="softsign")
    with pytest.raises(ValueError, match="^ensemble.size"):
        GeneratorModel(seeds=(0, 1))


PRESETS = sorted(p.stem for p in (Path(__file__).parent.parent / "conf" / "experiment").glob("gen_*.yaml"))


FAST = {"gen_linear_scalar"}  # the others are marked slow (k = 3 presets take minutes on a loaded 2-core box)


@pytest.mark.parametrize(
    "preset", [p if p in FAST else pytest.param(p, marks=pytest.mark.slow) for p in PRESETS]
)
def test_gen_preset_smoke(preset, tmp_outputs, tmp_path):
    from symexp.run import run

    run(compose_cfg([f"experiment={preset}", "budget=smoke", "save_checkpoints=false"]
                    + tmp_outputs))
    res = json.loads(next(Path(tmp_path).rglob("results.json")).read_text())
    assert res["status"] == "ok", res["error"]
    assert (next(Path(tmp_path).rglob("results.json")).parent / res["figures"]["generators"]).exists()
    for key in ("gen/invariance_ratio", "gen/identity", "gen/flow_loss_change", "gen/alignment"):
        assert key in res["metrics"]
