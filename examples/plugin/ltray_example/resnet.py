"""ResNet-20 for 32x32 images (He et al. 2016, section 4.2): a 3x3 conv, three stages of three
basic blocks with 16, 32 and 64 channels, global average pooling and one linear layer. Shortcuts
that change shape are 1x1 convolutions (option B); pruning leaves them dense, as ltray does for
ResNet18's."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ltray.models import Architecture

WIDTHS = (16, 32, 64)
BLOCKS = 3  # per stage: 6 * 3 + 2 = 20 layers


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        stages, c_in = [], WIDTHS[0]
        for i, width in enumerate(WIDTHS):
            blocks = [BasicBlock(c_in if b == 0 else width, width, 2 if (i and b == 0) else 1) for b in range(BLOCKS)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(WIDTHS[-1], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


resnet20 = Architecture(
    build=lambda num_classes, image_size: ResNet20(num_classes),  # pools adaptively: any side >= 1 works
    in_channels=3,
    image_size=32,
    dense_layers=("layer2.0.shortcut.0.weight", "layer3.0.shortcut.0.weight"),
)
