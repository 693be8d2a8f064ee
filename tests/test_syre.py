"""syre: the anchored and offset forms agree, theta0 is reproducible and checkpointed, selection and
W-fix behave, and the pipeline runs with it on an RF-LR ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from symexp.models.mlp import MLP
from symexp.models.rflr import RFLR
from symexp.syre import SigmaAsym, StaticBias, WFix, select_parameters
from tests.conftest import compose_cfg


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def _train(model, syre, opt_name: str, steps: int = 60) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.1),
           "adam": lambda: torch.optim.Adam(params, lr=0.01, weight_decay=0.1),
           "adamw": lambda: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)}[opt_name]()
    syre.configure(model, opt)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=g, dtype=torch.float64)
        opt.zero_grad()
        loss = (model(x) - x[:, :3].sin()).square().mean()
        loss.backward()
        syre.before_step(model, opt)
        opt.step()
        syre.after_step(model, opt)


def _effective(model) -> dict[str, torch.Tensor]:
    """The weights the forward pass uses (offset form: theta + theta0)."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.LayerNorm)):
            out[f"{name}.weight"], out[f"{name}.bias"] = module.weight.detach().clone(), module.bias.detach().clone()
    return out


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "adamw"])
def test_anchored_equals_offset(opt_name):
    a, b = Small().double(), Small().double()
    _train(a, StaticBias(sigma0=0.3, form="anchored", seeds=[3]), opt_name)
    _train(b, StaticBias(sigma0=0.3, form="offset", seeds=[3]), opt_name)
    ea, eb = _effective(a), _effective(b)
    for k in ea:
        torch.testing.assert_close(ea[k], eb[k], rtol=1e-9, atol=1e-10)
    c = Small().double()  # and both differ from plain weight decay
    _train(c, StaticBias(sigma0=0.0, seeds=[3]), opt_name)
    assert (ea["net.0.weight"] - _effective(c)["net.0.weight"]).abs().max() > 1e-3


def test_anchored_converges_to_theta0_without_loss():
    """With zero loss gradient the anchored decay pulls phi to theta0 (coupled and decoupled)."""
    for opt_cls in (torch.optim.SGD, torch.optim.AdamW):
        m = Small()
        syre = StaticBias(sigma0=0.5, seeds=[0], shift_init=False)
        opt = opt_cls(m.parameters(), lr=0.1, weight_decay=1.0)
        syre.configure(m, opt)
        for _ in range(400):
            for p in m.parameters():
                p.grad = torch.zeros_like(p)
            syre.before_step(m, opt)
            opt.step()
            syre.after_step(m, opt)
        torch.testing.assert_close(m.net[0].weight.detach(), syre.theta0["net.0.weight"], atol=1e-4, rtol=0)
        assert m.net[1].weight.abs().max() < 1e-4  # LayerNorm: ordinary decay toward 0, no anchor


def test_advanced_D_matches_explicit_penalty():
    """Coupled SGD with D: same as adding the gradient wd * D * (phi - theta0) by hand (no optimizer decay)."""
    m1, m2 = Small().double(), Small().double()
    syre = StaticBias(sigma0=0.2, sigma_D=0.5, seeds=[0], shift_init=False)
    o1 = torch.optim.SGD(m1.parameters(), lr=0.1, weight_decay=0.3)
    o2 = torch.optim.SGD(m2.parameters(), lr=0.1)
    syre.configure(m1, o1)
    assert not syre.fused_compatible and syre.D
    x = torch.randn(16, 4, dtype=torch.float64)
    for _ in range(20):
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            m(x).square().mean().backward()
        syre.before_step(m1, o1)
        for n, p in m2.named_parameters():
            if n in syre.theta0:
                p.grad += 0.3 * syre.D[n] * (p.detach() - syre.theta0[n])
            else:
                p.grad += 0.3 * p.detach()
        o1.step()
        o2.step()
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2)


def test_advanced_decoupled_matches_explicit_step():
    m = Small().double()
    syre = StaticBias(sigma0=0.2, sigma_D=0.5, seeds=[0], shift_init=False)
    opt = torch.optim.AdamW(m.parameters(), lr=0.05, weight_decay=0.5)
    syre.configure(m, opt)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)  # Adam's update is then exactly 0
    syre.before_step(m, opt)
    opt.step()
    for n, p in m.named_parameters():
        D, t0 = syre.D.get(n), syre.theta0.get(n)
        want = before[n] * (1 - 0.025) if D is None else before[n] - 0.025 * D * (before[n] - t0)
        torch.testing.assert_close(p.detach(), want)


def test_theta0_reproducible_per_member_and_selection():
    solo = RFLR(2, width=16, rank=3, depth=1, seeds=[5])
    ens = RFLR(2, width=16, rank=3, depth=1, seeds=[4, 5])
    a, b = StaticBias(seeds=[5]), StaticBias(seeds=[4, 5])
    ta, tb = a.anchors(solo), b.anchors(ens)
    assert set(ta) == {"mixers.0", "mixers.1"}  # frozen A/b buffers are not parameters: never touched
    for n in ta:
        torch.testing.assert_close(ta[n][0], tb[n][1])
        assert ta[n].std() == pytest.approx(0.01, rel=0.3)
    torch.testing.assert_close(StaticBias(seeds=[5]).anchors(solo)["mixers.0"], ta["mixers.0"])
    assert not torch.equal(StaticBias(seeds=[6]).anchors(solo)["mixers.0"], ta["mixers.0"])
    # selection: LayerNorm excluded, name patterns
    sel = select_parameters(Small())
    assert "net.1.weight" not in sel and {"net.0.weight", "net.0.bias", "net.3.weight"} <= set(sel)
    assert set(select_parameters(Small(), include=["net.3.*"])) == {"net.3.weight", "net.3.bias"}
    assert set(select_parameters(Small(), exclude=["*.bias"])) == {"net.0.weight", "net.3.weight"}
    fan = StaticBias(mode="fan_in_relative", sigma0=1.0, seeds=[0]).anchors(MLP(400, width=300, depth=1, seeds=[0]))
    assert fan["weights.0"].std() == pytest.approx(1 / 20, rel=0.05)
    assert fan["biases.0"].std() == pytest.approx(1 / 20, rel=0.2)


def test_excluded_params_untouched():
    m = Small()
    ln_before = m.net[1].weight.detach().clone()
    syre = StaticBias(sigma0=0.5, seeds=[0], exclude=["net.3.*"])
    w3 = m.net[3].weight.detach().clone()
    opt = torch.optim.Adam(m.parameters(), lr=0.1, weight_decay=0.0)
    syre.configure(m, opt)
    assert torch.equal(m.net[1].weight, ln_before) and torch.equal(m.net[3].weight, w3)
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    syre.before_step(m, opt)
    assert all(p.grad.abs().max() == 0 for p in m.parameters())  # wd = 0: syre adds nothing


def test_wfix_entries_never_move_under_adamw():
    m = MLP(6, width=10, depth=2, seeds=[0, 1])
    w = WFix(fraction=0.3, kappa=0.01, seeds=[0, 1])
    opt = torch.optim.AdamW(m.parameters(), lr=0.05, weight_decay=0.5)
    w.configure(m, opt)
    assert set(w.masks) == {"weights.0", "weights.1", "weights.2"}
    assert int(w.masks["weights.0"][0, 0].sum()) == round(0.3 * 6)  # per row
    fixed = {n: p.detach()[w.masks[n]].clone() for n, p in m.named_parameters() if n in w.masks}
    torch.testing.assert_close(fixed["weights.0"], w.values["weights.0"][w.masks["weights.0"]])
    for _ in range(10):
        opt.zero_grad()
        m(torch.randn(2, 5, 6)).square().sum().backward()
        w.before_step(m, opt)
        opt.step()
        w.after_step(m, opt)
        for n, p in m.named_parameters():
            if n in w.masks:
                assert torch.equal(p.detach()[w.masks[n]], fixed[n])
                assert not torch.equal(p.detach()[~w.masks[n]], torch.zeros(()))
    solo = WFix(fraction=0.3, seeds=[1])
    solo.configure(MLP(6, width=10, depth=2, seeds=[1]), opt)
    assert torch.equal(solo.masks["weights.1"][0], w.masks["weights.1"][1])


def test_sigma_asym_swaps_activation():
    m = Small()
    x = torch.randn(5, 4)
    before = m(x)
    SigmaAsym(seeds=[0]).configure(m, None)
    assert type(m.net[2]).__name__ == "SigmaAsymActivation"
    assert not torch.allclose(m(x), before)
    ens = MLP(3, width=8, depth=2, seeds=[0, 1])
    SigmaAsym(seeds=[0, 1]).configure(ens, None)
    assert ens(torch.randn(2, 4, 3)).shape == (2, 4)


def test_bad_config_names_key():
    with pytest.raises(ValueError, match="^syre.mode"):
        StaticBias(mode="nope")
    with pytest.raises(ValueError, match="^syre.fraction"):
        WFix(fraction=0.3, count=4)


def test_pipeline_rflr_ensemble_and_checkpoint(tmp_outputs, tmp_path):
    from symexp.run import run

    over = ["syre=static_bias", "syre.weight_decay=0.01", "task.epochs=2", "task.val_every=1", "ensemble.size=2",
            "model.width=16", "model.rank=3", "model.depth=1", "metric=[]"]
    run(compose_cfg(over + tmp_outputs))
    res = json.loads(next(Path(tmp_path).rglob("results.json")).read_text())
    assert res["status"] == "ok", res["error"]
    ckpt = torch.load(next(Path(tmp_path).rglob("last.ckpt")), weights_only=False)
    theta0 = ckpt["syre"]["theta0"]
    fresh = StaticBias(seeds=[0, 1])
    torch.testing.assert_close(fresh.anchors(RFLR(1, 16, 3, 1, seeds=[0, 1]))["mixers.0"], theta0["mixers.0"])
    restored = StaticBias(seeds=[9, 9])
    restored.load_state_dict(ckpt["syre"])
    model = RFLR(1, 16, 3, 1, seeds=[0, 1])
    torch.testing.assert_close(restored.anchors(model)["mixers.1"], theta0["mixers.1"])
    assert restored.shifted  # a resumed run does not add theta0 to the parameters a second time
