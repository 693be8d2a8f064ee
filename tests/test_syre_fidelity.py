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
