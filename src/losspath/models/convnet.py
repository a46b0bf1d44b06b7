"""`convnet6[_W]`: a small 6-layer convnet in the spirit of Liao & Poggio (Theory II, 2017, Fig. 3).

Liao & Poggio train "a 6-layer (with the 1st layer being the input) convolutional network" on CIFAR-10 and
do not fix its exact shape in the text we have, so the shape is ours: the input plus 5 weight layers,
  conv3x3(C -> W), conv3x3(W -> W, stride 2), conv3x3(W -> 2W), conv3x3(2W -> 2W, stride 2),
  global average pooling, Linear(2W -> classes),
with the activation after every conv, conv biases, no BatchNorm (so a "poly" net is exactly a polynomial in
its weights, as in their Bezout argument), default W = 32.  Pooling is adaptive, so any 2-D input works:
digits 8x8 (8 -> 4 -> 2) and CIFAR 32x32 (32 -> 16 -> 8).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ConvNet6(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 32, act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.act1 = act()
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=2, padding=1)
        self.act2 = act()
        self.conv3 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        self.act3 = act()
        self.conv4 = nn.Conv2d(2 * width, 2 * width, kernel_size=3, stride=2, padding=1)
        self.act4 = act()
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.act3(self.conv3(x))
        x = self.act4(self.conv4(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)
