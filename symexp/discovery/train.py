"""A plain training loop for generator learning, without Lightning: for tests and notebooks (the task
runs the same objective under Lightning)."""

from __future__ import annotations

import torch

from symexp.discovery.action import GeneratorModel
from symexp.discovery.losses import ObjectiveConfig, objective
from symexp.discovery.targets import TargetNet


def fit_generators(
    model: GeneratorModel, target: TargetNet, cfg: ObjectiveConfig, steps: int, lr: float = 1e-3,
    batch_size: int = 128, n_samples: int = 10_000, seed: int = 0,
) -> GeneratorModel:
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(n_samples, target.n_params, generator=gen)
    x = torch.randn(n_samples, *target.x_shape, generator=gen)
    y = torch.randn(n_samples, *target.y_shape, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1000, 0.6)
    for step in range(steps):
        idx = torch.randint(0, n_samples, (batch_size,), generator=gen)
        loss, _ = objective(model, target, theta[idx], x[idx], y[idx], cfg, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model
