"""The dense control of seed 000: every hidden layer trained; its partial functions are its hidden
features. ``depth`` hidden layers of ``width`` units, a linear scalar read-out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.stacked import activation_fn, bmv, member_generators, uniform_fan_in


class MLP(nn.Module):
    """Ensemble of K independent MLPs with stacked (K, ...) parameters."""

    def __init__(
        self,
        in_dim: int,
        width: int = 512,
        depth: int = 3,
        activation: str = "relu",
        out_dim: int = 1,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        self.in_dim, self.width, self.depth, self.out_dim = in_dim, width, depth, out_dim
        self.act = activation_fn(activation)
        self.members = len(seeds)
        dims = [in_dim] + [width] * depth + [out_dim]
        gens = member_generators(seeds)
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for l in range(depth + 1):
            self.weights.append(nn.Parameter(uniform_fan_in(gens, (dims[l + 1], dims[l]), dims[l])))
            self.biases.append(nn.Parameter(uniform_fan_in(gens, (dims[l + 1],), dims[l])))

    def first_layer(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First-layer atoms (a_j, b_j) and their outgoing coefficients: (K,W,d), (K,W), (K,W,out)."""
        return self.weights[0], self.biases[0], self.weights[1].transpose(1, 2)

    def forward(self, x: torch.Tensor, return_partials: bool = False):
        """x (K, n, d) -> f (K, n) (or (K, n, out) when out_dim > 1); partials = hidden features."""
        z, partials = x, []
        for l in range(self.depth + 1):
            z = bmv(self.weights[l], z) + self.biases[l][:, None, :]
            if l < self.depth:
                z = self.act(z)
                partials.append(z)
        out = z[..., 0] if self.out_dim == 1 else z
        return (out, partials) if return_partials else out

