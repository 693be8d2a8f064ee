"""Two-layer ensemble classifier x -> act(W1 x + b1) -> W2 h + b2 (seed 002's teacher-student student).
The hidden activations are the output of the submodule ``hidden`` so rank metrics can hook them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.stacked import activation_fn, bmv, member_generators, uniform_fan_in


class _Act(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.fn = activation_fn(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class TwoLayerNet(nn.Module):
    def __init__(self, in_dim: int, width: int = 300, out_dim: int = 10, activation: str = "tanh",
                 seeds: Sequence[int] = (0,)) -> None:
        super().__init__()
        self.members, self.in_dim, self.width, self.out_dim = len(seeds), in_dim, width, out_dim
        gens = member_generators(seeds)
        self.weights = nn.ParameterList([nn.Parameter(uniform_fan_in(gens, (width, in_dim), in_dim)),
                                         nn.Parameter(uniform_fan_in(gens, (out_dim, width), width))])
        self.biases = nn.ParameterList([nn.Parameter(uniform_fan_in(gens, (width,), in_dim)),
                                        nn.Parameter(uniform_fan_in(gens, (out_dim,), width))])
        self.hidden = _Act(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (K, n, d) -> logits (K, n, out)."""
        h = self.hidden(bmv(self.weights[0], x) + self.biases[0][:, None, :])
        return bmv(self.weights[1], h) + self.biases[1][:, None, :]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self(x)
        return nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(-1)

    @torch.no_grad()
    def final_metrics(self, task) -> dict[str, torch.Tensor]:
        dm = task.datamodule
        acc = (self(dm.x_val).argmax(-1) == dm.y_val).float().mean(-1)
        return {"test/loss": self.loss(dm.x_val, dm.y_val), "test/accuracy": acc}
