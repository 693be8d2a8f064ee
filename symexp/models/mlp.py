"""The dense control of seed 000: every layer trained. ``depth`` counts hidden layers of ``width`` units,
so the net has depth + 1 linear maps; seed 000's "matched MLP" of depth 3 reads as 3 linear maps, i.e.
``depth=2`` (the reading under which its quad2d control reaches active partial defect ~0.3 against the
paper's 0.24; README, seed 000 section).

Its partial functions are hidden features, read either before the activation (``partials="pre"``, the
paper-matching default: a ReLU unit's post-activation output is constant on much of the grid, so the
variance rule keeps only a few units active) or after it (``"post"``), at the hidden layers listed in
``partial_layers`` (1-based; default all). Blocks are named after the layer they read, so
``sym/partial_defect/block<l>`` is hidden layer l whatever the selection; the headline
``sym/partial_defect`` is the last selected layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.stacked import activation_fn, bmv, member_generators, uniform_fan_in

PARTIALS = ("pre", "post")


class MLP(nn.Module):
    """Ensemble of K independent MLPs with stacked (K, ...) parameters."""

    def __init__(
        self,
        in_dim: int,
        width: int = 512,
        depth: int = 2,
        activation: str = "relu",
        out_dim: int = 1,
        partials: str = "pre",
        partial_layers: Sequence[int] | None = None,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if partials not in PARTIALS:
            raise ValueError(f"model.partials: {partials!r} is not one of {list(PARTIALS)}")
        layers = list(range(1, depth + 1)) if partial_layers is None else [int(i) for i in partial_layers]
        bad = [i for i in layers if not 1 <= i <= depth]
        if bad or len(set(layers)) != len(layers):
            raise ValueError(f"model.partial_layers: {list(layers)} must be distinct hidden layers in 1..{depth} "
                             f"(model.depth={depth})")
        self.in_dim, self.width, self.depth, self.out_dim = in_dim, width, depth, out_dim
        self.partials, self.partial_blocks = partials, sorted(layers)
        self.activation_name = activation
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
        """x (K, n, d) -> f (K, n) (or (K, n, out) when out_dim > 1); partials = the selected hidden
        layers' features, pre- or post-activation, [(K, n, width)] in layer order."""
        z, partials = x, []
        for l in range(self.depth + 1):
            z = bmv(self.weights[l], z) + self.biases[l][:, None, :]
            if l < self.depth:
                pre = z
                z = self.act(z)
                if return_partials and l + 1 in self.partial_blocks:
                    partials.append(pre if self.partials == "pre" else z)
        out = z[..., 0] if self.out_dim == 1 else z
        return (out, partials) if return_partials else out
