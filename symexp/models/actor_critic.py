"""PPO's actor and critic as in Dohare et al.'s Slippery Ant experiments: two separate MLPs obs-256-256
with ReLU, a Gaussian policy whose log standard deviation is a state-independent parameter (init 0),
LeCun-uniform weights and zero biases. Not an ensemble: one member per run."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from symexp.seeding import generator


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@torch.no_grad()
def lecun_uniform_(module: nn.Module, gen: torch.Generator) -> None:
    """Weights U(-sqrt(3/fan_in), sqrt(3/fan_in)) (variance 1/fan_in), biases zero, for every Linear."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = math.sqrt(3.0 / m.in_features)
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 2 * bound - bound)
            nn.init.zeros_(m.bias)


class ActorCritic(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        log_std_init: float = 0.0,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if len(seeds) > 1:
            raise ValueError("ensemble.size: actor_critic trains one member per run; set ensemble.size=1")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"model.hidden: need at least one positive width, got {list(hidden)}")
        self.obs_dim, self.act_dim, self.hidden = int(obs_dim), int(act_dim), [int(h) for h in hidden]
        self.width = self.hidden[-1]
        self.actor = _mlp([self.obs_dim, *self.hidden, self.act_dim])
        self.critic = _mlp([self.obs_dim, *self.hidden, 1])
        self.log_std = nn.Parameter(torch.full((self.act_dim,), float(log_std_init)))
        lecun_uniform_(self, generator(seeds[0], "model"))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action mean (..., act_dim) and state value (...)."""
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def policy_features(self, obs: torch.Tensor) -> torch.Tensor:
        """Activations of the last hidden layer of the policy (after its ReLU): the layer whose rank
        the loss-of-plasticity plots show."""
        return self.actor[:-1](obs)
