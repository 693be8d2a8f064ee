"""ResNet18 with the CIFAR stem (3x3 conv, stride 1, no max-pool): basic blocks [2, 2, 2, 2] at
widths (w, 2w, 4w, 8w), w = 64 in the paper (``width`` shrinks it for CPU smoke runs).

Layer names: ``stem``, ``layer1`` .. ``layer4``, ``pool`` (penultimate features, flattened), ``fc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from symexp.models.vision_common import seeded, single_seed


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        num_classes: int = 10,
        width: int = 64,
        blocks: Sequence[int] = (2, 2, 2, 2),
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        del image_size  # any size works: global average pooling
        self.feature_dim = 8 * width
        with seeded(single_seed(seeds, "resnet18")):
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            cin, stages = width, []
            for i, n in enumerate(blocks):
                cout = width * 2**i
                stage = [BasicBlock(cin if j == 0 else cout, cout, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
                stages.append(nn.Sequential(*stage))
                cin = cout
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.pool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
