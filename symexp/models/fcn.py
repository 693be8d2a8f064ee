"""The fully connected classifier of seed 002 (Sec. 6.3: 4 hidden layers of 300 units on MNIST) and of
the mode-connectivity recipe (784-512x3-10, LayerNorm, GELU). Inputs are images, flattened here.

Layer names for rank metrics: ``body.<3l>`` is hidden layer l's pre-activation (Linear output),
``body.<3l+2>`` its post-activation; ``head`` the logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.vision_common import seeded, single_seed

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def make_activation(name: str, key: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"{key}: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class FCN(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        width: int = 300,
        depth: int = 4,
        activation: str = "relu",
        norm: str = "none",
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if norm not in ("none", "layernorm"):
            raise ValueError(f"model.norm: choose none or layernorm, got {norm!r}")
        seed = single_seed(seeds, "fcn")
        in_dim = in_channels * image_size * image_size
        with seeded(seed):
            layers: list[nn.Module] = []
            for l in range(depth):
                layers.append(nn.Linear(in_dim if l == 0 else width, width))
                layers.append(nn.LayerNorm(width) if norm == "layernorm" else nn.Identity())
                layers.append(make_activation(activation, "model.activation"))
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width if depth else in_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
