"""Two-layer ReLU network started in a low-capacity state (seed 002, Fig. 1 and Fig. 14): the first
``identical`` hidden neurons (or a fraction of them) are copies of neuron 0, with the same incoming
weights, bias and outgoing weights. Permutation symmetry keeps identical neurons identical under any
gradient method unless something (syre) breaks it.

Layer names: ``hidden`` (pre-activation), ``act`` (post-activation), ``out``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.vision_common import seeded, single_seed
from symexp.symmetry.permutation import collapsed_units, duplicate_groups


class IdenticalNeuronsNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        num_classes: int = 10,
        width: int = 64,
        identical_fraction: float = 0.0,
        identical: int | None = None,
        bias: bool = True,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if not 0.0 <= identical_fraction <= 1.0:
            raise ValueError(f"model.identical_fraction: must lie in [0, 1], got {identical_fraction}")
        count = round(identical_fraction * width) if identical is None else identical
        if not 0 <= count <= width:
            raise ValueError(f"model.identical: must lie in [0, {width}], got {count}")
        self.identical, self.width = count, width
        in_dim = in_channels * image_size * image_size
        with seeded(single_seed(seeds, "identical_neurons")):
            self.hidden = nn.Linear(in_dim, width, bias=bias)
            self.act = nn.ReLU()
            self.out = nn.Linear(width, num_classes, bias=bias)
            self.init_extra()

    @torch.no_grad()
    def init_extra(self) -> None:
        """Copy neuron 0 onto neurons 1..identical-1 (incoming, bias and outgoing weights)."""
        if self.identical > 1:
            self.hidden.weight[1 : self.identical] = self.hidden.weight[0]
            if self.hidden.bias is not None:
                self.hidden.bias[1 : self.identical] = self.hidden.bias[0]
            self.out.weight[:, 1 : self.identical] = self.out.weight[:, :1]

    def distinct_neurons(self, tol: float = 1e-6) -> int:
        """How many hidden neurons differ from every earlier one (incoming, bias and outgoing weights)."""
        w = torch.cat([self.hidden.weight, self.out.weight.T], 1).detach()
        if self.hidden.bias is not None:
            w = torch.cat([w, self.hidden.bias.detach()[:, None]], 1)
        return self.width - collapsed_units(duplicate_groups(w, tol, offset=1.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.hidden(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))
