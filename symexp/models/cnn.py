"""The classic MNIST CNN (the syre paper's continual-learning net): conv(1->10, k5) - maxpool - ReLU -
conv(10->20, k5) - dropout2d - maxpool - ReLU - fc 320->50 - ReLU - dropout - fc 50->10. ``padding``
lets it run on small images (the flattened size is computed, 320 at 28x28).

Layer names: ``conv1``, ``conv2`` (conv outputs), ``fc1``, ``fc2``; ``features`` = fc1 after ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from symexp.models.vision_common import seeded, single_seed


class CNN(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        channels: Sequence[int] = (10, 20),
        hidden: int = 50,
        padding: int = 0,
        dropout: float = 0.5,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        size = image_size
        for _ in range(2):
            size = (size + 2 * padding - 4) // 2
        if size < 1:
            raise ValueError(f"model.padding: image_size {image_size} is too small for two k5 convs; raise padding")
        with seeded(single_seed(seeds, "cnn")):
            self.conv1 = nn.Conv2d(in_channels, channels[0], 5, padding=padding)
            self.conv2 = nn.Conv2d(channels[0], channels[1], 5, padding=padding)
            self.drop2d = nn.Dropout2d(dropout)
            self.fc1 = nn.Linear(channels[1] * size * size, hidden)
            self.drop = nn.Dropout(dropout)
            self.fc2 = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.drop2d(self.conv2(x)), 2))
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.features(x)))
