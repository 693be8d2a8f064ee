"""syre fidelity (issue 14): the anchor survives Lightning's gradient clipping, W-Asym takes Lim et al.'s
per-layer recipe, distinct neurons are counted at a functional tolerance, and the weight-decay-0 warning
says what still happens."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from symexp.syre import StaticBias
from symexp.tasks.base import SymexpTask


class _Regression(SymexpTask):
    """The smallest automatic-optimisation task: a float64 MLP on a fixed regression batch."""

    def __init__(self, syre) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).double(), syre=syre)
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 4, generator=g, dtype=torch.float64)
        self.y = self.x[:, :3].sin()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(8)), batch_size=1)

    def training_step(self, batch, batch_idx):
        i = batch[0].item()
        x, y = self.x[8 * i: 8 * i + 8], self.y[8 * i: 8 * i + 8]
        return (self.model(x) - y).square().mean()

    def configure_optimizers(self):
        return self.attach_syre(torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.1))


def _fit(form: str, steps: int = 23, clip: float | None = 0.05) -> dict[str, torch.Tensor]:
    task = _Regression(StaticBias(sigma0=0.3, form=form, seeds=[3]))
    L.Trainer(max_steps=steps, gradient_clip_val=clip, accelerator="cpu", logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(task)
    return {n: p.detach().clone() for n, p in task.model.named_parameters()} if form == "anchored" else \
        {n: getattr(m, "weight" if n.endswith("weight") else "bias").detach().clone()
         for n, m in ((n, task.model.get_submodule(n.rpartition(".")[0])) for n in _names())}


def _names() -> list[str]:
    return ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_anchor_applied_after_gradient_clipping():
    """With trainer.gradient_clip_val the anchored form must still equal the offset form: the clip acts on
    the loss gradient only, as it does in l(theta + theta0) + gamma |theta|^2 (the decay is the optimizer's)."""
    anchored, offset = _fit("anchored"), _fit("offset")
    for n in _names():
        torch.testing.assert_close(anchored[n], offset[n], rtol=1e-9, atol=1e-10)
    unclipped = _fit("anchored", clip=None)  # and the clip really bites in this setting
    assert (unclipped["0.weight"] - anchored["0.weight"]).abs().max() > 1e-3


def _fcn():
    from symexp.models.fcn import FCN

    return FCN(in_channels=1, image_size=4, num_classes=10, width=32, depth=3, activation="gelu", norm="layernorm")


def test_wasym_per_layer_counts_and_kappas():
    """Lim et al.'s recipe: a fixed count per row and a kappa per layer (here scaled down: 4, 8, 8, 16 of
    16, 32, 32, 32 columns; kappa 1, 1, 1/2, 1/4 as the std of the fixed values)."""
    from symexp.syre import WFix

    model = _fcn()
    w = WFix(fraction=None, count=[4, 8, 8, 16], kappa=[1.0, 1.0, 0.5, 0.25], seeds=[0])
    w.configure(model, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.03))
    names = list(w.masks)
    assert len(names) == 4 and all(n.endswith("weight") for n in names)
    for n, count, kappa in zip(names, (4, 8, 8, 16), (1.0, 1.0, 0.5, 0.25)):
        m = w.masks[n]
        assert (m.sum(1) == count).all(), n
        fixed = dict(model.named_parameters())[n].detach()[m]
        assert abs(fixed.std().item() / kappa - 1) < 0.25, (n, fixed.std().item(), kappa)
    var = WFix(fraction=None, count=[4, 8, 8, 16], kappa=[1.0, 1.0, 0.5, 0.25], kappa_is="variance", seeds=[0])
    var.configure(_fcn(), torch.optim.AdamW(model.parameters(), lr=1e-3))
    torch.testing.assert_close(var.values[names[3]], w.values[names[3]] * 2)  # sqrt(1/4) / (1/4)


def test_wasym_per_layer_list_of_wrong_length_names_key():
    import pytest

    from symexp.syre import WFix

    model = _fcn()
    with pytest.raises(ValueError, match=r"^syre.kappa: 2 entries for 4 fixed weights"):
        WFix(fraction=0.1, kappa=[1.0, 0.5], seeds=[0]).configure(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"^syre.count"):
        WFix(fraction=None, count=[4, -1], seeds=[0])


def test_syre_lmc_wasym_preset_is_lim_et_al_recipe(tmp_outputs):
    """syre=wasym_lmc: per-layer counts (scaled to the smoke model's 64-input, 64-wide layers) and kappas."""
    from symexp.run import build
    from tests.conftest import compose_cfg

    task = build(compose_cfg(["experiment=syre_lmc", "budget=smoke", "syre=wasym_lmc"] + tmp_outputs))["task"]
    task.configure_optimizers()
    counts = [int(m.sum(1)[0]) for m in task.syre.masks.values()]
    assert counts == [5, 8, 8, 32]
    stds = [v[m].std().item() for v, m in zip(task.syre.values.values(), task.syre.masks.values())]
    assert stds[3] < 0.4 < 0.7 < stds[0]  # kappa 1/4 on the last layer, 1 on the first
    paper = compose_cfg(["experiment=syre_lmc", "syre=wasym_lmc"] + tmp_outputs)
    assert list(paper.syre.count) == [64, 64, 64, 256] and list(paper.syre.kappa) == [1.0, 1.0, 0.5, 0.25]


def _small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def test_weight_decay_zero_warning_says_the_perturbation_remains(caplog):
    """At weight decay 0 the anchor term vanishes, but the anchored form still starts at theta_init + theta0:
    the warning must say so, not that syre has no effect."""
    m = _small()
    before = m[0].weight.detach().clone()
    with caplog.at_level("WARNING", logger="symexp.syre"):
        StaticBias(sigma0=0.1, seeds=[0]).configure(m, torch.optim.SGD(m.parameters(), lr=0.1))
    assert not torch.equal(m[0].weight, before)  # the perturbation did happen
    assert "initial perturbation" in caplog.text and "no effect" not in caplog.text
    caplog.clear()
    m = _small()
    with caplog.at_level("WARNING", logger="symexp.syre"):
        StaticBias(sigma0=0.1, shift_init=False, seeds=[0]).configure(m, torch.optim.SGD(m.parameters(), lr=0.1))
    assert torch.equal(m[0].weight, before) and "changes nothing" in caplog.text


def test_perturb_only_and_anchor_only_split_syre():
    """perturb_only: shifted start, plain decay (no theta0 in the gradient); anchor_only: unshifted start,
    the gamma theta0 term in the gradient; full syre: both."""
    import pytest

    results = {}
    for name, kw in {"perturb": {"anchor": False}, "anchor": {"shift_init": False}, "full": {}}.items():
        m = _small()
        init = m[0].weight.detach().clone()
        syre = StaticBias(sigma0=0.1, seeds=[0], **kw)
        opt = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=0.5)
        syre.configure(m, opt)
        for p in m.parameters():
            p.grad = torch.zeros_like(p)
        syre.before_step(m, opt)
        results[name] = (m[0].weight.detach() - init, m[0].weight.grad.clone(), syre.theta0["0.weight"])
    shift, grad, theta0 = results["perturb"]
    torch.testing.assert_close(shift, theta0) and torch.testing.assert_close(grad, torch.zeros_like(grad))
    shift, grad, theta0 = results["anchor"]
    assert shift.abs().max() == 0
    torch.testing.assert_close(grad, -0.5 * theta0)
    shift, grad, theta0 = results["full"]
    torch.testing.assert_close(shift, theta0)
    torch.testing.assert_close(grad, -0.5 * theta0)
    with pytest.raises(ValueError, match="^syre.anchor"):
        StaticBias(anchor=False, shift_init=False)


def test_distinct_neurons_counts_functional_copies():
    """Copies perturbed by 1e-4 of the weight scale are one feature (the covariance rank sees one); copies
    perturbed by half of it are distinct. Exact counting (rtol 1e-6) sees the tiny perturbation as distinct."""
    from symexp.models.identical_neurons import IdenticalNeuronsNet
    from symexp.symmetry.rank import covariance_rank

    net = IdenticalNeuronsNet(1, 8, 10, width=16, identical=12, seeds=[0])
    assert net.distinct_neurons() == 5
    scale = net.hidden.weight.norm(dim=1).median()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net.hidden.weight[1:12] += 1e-4 * scale / 8 * torch.randn(11, 64, generator=g)
    assert net.distinct_neurons() == 5 and net.distinct_neurons(rtol=1e-6) == 16
    feats = net.features(torch.rand(500, 1, 8, 8, generator=g))
    assert int(covariance_rank(feats, tol=1e-4).max()) <= 5
    with torch.no_grad():
        net.hidden.weight[1:12] += 0.5 * scale / 8 * torch.randn(11, 64, generator=g)
    assert net.distinct_neurons() == 16 and net.nearest_neuron_distance() > 0.1
