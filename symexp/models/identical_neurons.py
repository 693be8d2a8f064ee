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
        distinct_rtol: float = 0.1,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if not distinct_rtol > 0:
            raise ValueError(f"model.distinct_rtol: must be > 0, got {distinct_rtol}")
        self.distinct_rtol = float(distinct_rtol)
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

    def _relative_distances(self) -> torch.Tensor:
        """Pairwise distances between the hidden neurons' weight vectors (incoming, bias, outgoing), in
        units of the median neuron norm (the weight scale)."""
        w = torch.cat([self.hidden.weight, self.out.weight.T], 1).detach().double()
        if self.hidden.bias is not None:
            w = torch.cat([w, self.hidden.bias.detach().double()[:, None]], 1)
        scale = w.norm(dim=1).median().clamp_min(torch.finfo(torch.float64).tiny)
        return torch.cdist(w, w, compute_mode="donot_use_mm_for_euclid_dist") / scale

    def distinct_neurons(self, rtol: float | None = None) -> int:
        """How many hidden neurons are functionally distinct: a neuron within ``rtol`` x the weight scale
        (median neuron norm) of an earlier one counts as its copy. The default ``distinct_rtol`` = 0.1
        treats neurons that differ by under 10% of the weight scale as one feature (their outputs differ
        by about that fraction, i.e. they stay ~0.99 correlated, and the covariance rank at tol 1e-4 does
        not resolve them either); rtol = 1e-6 counts only exact copies (the permutation-symmetric subspace
        itself)."""
        rtol = self.distinct_rtol if rtol is None else rtol
        dup = (self._relative_distances() < rtol).tril(-1).any(1)
        return int((~dup).sum())

    def nearest_neuron_distance(self) -> float:
        """Median over neurons of the distance to the nearest other neuron, in units of the weight scale
        (0 while more than half the neurons have an exact copy)."""
        d = self._relative_distances()
        d.fill_diagonal_(float("inf"))
        return float(d.min(1).values.median()) if d.shape[0] > 1 else float("nan")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.hidden(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))
