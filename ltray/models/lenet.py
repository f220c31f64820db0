"""The small grey-scale networks of the paper: LeNet (two 3x3 convs, three linear layers) and
the classic LeNet-300-100 multilayer perceptron. Default PyTorch initialisation."""

from __future__ import annotations

import torch
from torch import nn


def lenet_feature_side(image_size: int) -> int:
    """Side (pixels) of the last feature map: two valid 3x3 convs, each followed by a 2x2 max-pool."""
    return ((image_size - 2) // 2 - 2) // 2


class LeNet(nn.Module):
    """conv3x3(in->6) -> ReLU -> pool2 -> conv3x3(6->16) -> ReLU -> pool2 -> 120 -> 84 -> classes.

    On 28x28 inputs the feature maps go 28 -> 26 -> 13 -> 11 -> 5, so fc1 sees 16*5*5 = 400 inputs.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        side = lenet_feature_side(image_size)
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=3)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet300100(nn.Module):
    """Fully connected 784 -> 300 -> 100 -> classes on flattened 28x28 inputs."""

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels * image_size * image_size, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)
