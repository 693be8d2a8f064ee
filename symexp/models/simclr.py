"""SimCLR network: a ResNet18 encoder (CIFAR stem, classifier removed) and a two-layer projection head
Linear(512, 512) - ReLU - Linear(512, out). The linear probes of Table 1 read ``features`` (before the
head, the penultimate representation) and ``project`` (after the head, the last layer).

Layer names: ``encoder.*`` (the ResNet18's), ``head.0``, ``head.2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.resnet18 import ResNet18
from symexp.models.vision_common import seeded, single_seed


class SimCLRNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        num_classes: int = 100,
        width: int = 64,
        head_hidden: int = 512,
        out_dim: int = 128,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        seed = single_seed(seeds, "simclr")
        self.encoder = ResNet18(in_channels, image_size, num_classes, width=width, seeds=[seed])
        self.encoder.fc = nn.Identity()
        with seeded(seed + 1):
            d = self.encoder.feature_dim
            self.head = nn.Sequential(nn.Linear(d, head_hidden), nn.ReLU(), nn.Linear(head_hidden, out_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)
