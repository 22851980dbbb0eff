"""Networks: the seed's `Net`."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    """The seed's CNN: 593,200 parameters, 28x28x1 in, log-probabilities over 10 digits out.

    `num_classes` sizes the last layer for other datasets (26 letters, 47 EMNIST-balanced classes, ...); the
    default 10 is the seed's network exactly.

    conv1 1->32 (26x26), conv2 32->64 (24x24) + max-pool (12x12), conv3 64->128 (10x10),
    conv4 128->256 (8x8) + max-pool (4x4), fc1 4096->50, fc2 50->10. All convolutions are
    3x3 without padding; max-pool is applied to conv2's and conv4's outputs before their ReLU.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3)
        self.conv4 = nn.Conv2d(128, 256, kernel_size=3)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(4096, 50)
        self.fc2 = nn.Linear(50, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.pool1(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = F.relu(self.pool2(self.conv4(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
