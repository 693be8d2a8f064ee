"""RF-LR, the random-feature low-rank network of seed 000, section 2.

Block l: u = sigma(A z + b) with A (W x r_{l-1}) and b frozen random features, z = B u with B (r_l x W)
trained. r_0 = d, r_L = 1 and hidden bottlenecks of rank r. ``first_scale`` / ``hidden_scale`` multiply
the frozen A of the first / later blocks (1 = nn.Linear's U(+-1/sqrt(fan_in)); sqrt(fan_in) = U(+-1)
features whose scale grows with the bottleneck's width). ``depth`` counts the hidden bottlenecks
(the partial functions live there), so the network has depth + 1 blocks: seed 000's rank-10 depth-1
runs have 10 partials, which only this reading allows. Init follows MMNN (nn.Linear defaults).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.stacked import activation_fn, bmv, member_generators, uniform_fan_in


class RFLR(nn.Module):
    """Ensemble of K independent RF-LR networks with stacked (K, ...) tensors."""

    def __init__(
        self,
        in_dim: int,
        width: int = 512,
        rank: int = 8,
        depth: int = 3,
        activation: str = "relu",
        mixer_bias: bool = False,
        first_scale: float = 1.0,
        hidden_scale: float = 1.0,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if rank > width:
            raise ValueError(f"model.rank={rank} exceeds model.width={width}: a bottleneck cannot be wider")
        self.in_dim, self.width, self.rank, self.depth = in_dim, width, rank, depth
        self.activation_name = activation
        self.act = activation_fn(activation)
        self.members = len(seeds)
        self.dims = [in_dim] + [rank] * depth + [1]
        gens = member_generators(seeds)
        self.mixers = nn.ParameterList()
        self.biases = nn.ParameterList() if mixer_bias else None
        for l in range(depth + 1):
            r_in, r_out = self.dims[l], self.dims[l + 1]
            scale = first_scale if l == 0 else hidden_scale
            self.register_buffer(f"A{l}", uniform_fan_in(gens, (width, r_in), r_in, scale))
            self.register_buffer(f"b{l}", uniform_fan_in(gens, (width,), r_in))
            self.mixers.append(nn.Parameter(uniform_fan_in(gens, (r_out, width), width)))
            if self.biases is not None:
                self.biases.append(nn.Parameter(uniform_fan_in(gens, (r_out,), width)))

    def features(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen (A, b) of block l, shapes (K, W, r_{l-1}) and (K, W)."""
        return getattr(self, f"A{l}"), getattr(self, f"b{l}")

    def first_layer(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First-layer atoms (a_j, b_j) and their outgoing coefficients: (K,W,d), (K,W), (K,W,r_1)."""
        A, b = self.features(0)
        return A, b, self.mixers[0].transpose(1, 2)

    def forward(self, x: torch.Tensor, return_partials: bool = False):
        """x (K, n, d) -> f (K, n); with return_partials also the bottleneck partials [(K, n, r)] * depth."""
        z, partials = x, []
        for l in range(self.depth + 1):
            A, b = self.features(l)
            u = self.act(bmv(A, z) + b[:, None, :])
            z = bmv(self.mixers[l], u)
            if self.biases is not None:
                z = z + self.biases[l][:, None, :]
            if l < self.depth:
                partials.append(z)
        out = z[..., 0]
        return (out, partials) if return_partials else out

