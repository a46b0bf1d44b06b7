"""A small 1-D convnet for mnist1d signals (N, 1, 40), ours (the 1-D ResNet is cifar_resnet.py, dims=1).

`conv1d`: a small convnet in the spirit of the mnist1d reference convnet (Greydanus 2020): three Conv1d
layers of 32 channels, kernel 5, stride 2, padding 2, no BatchNorm, each followed by the activation, then
flatten and a Linear head (40 -> 20 -> 10 -> 5, so 32 * 5 = 160 features for mnist1d).
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn


class ConvNet1d(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, act: Callable[[], nn.Module] = nn.ReLU,
                 channels: int = 32, num_layers: int = 3):
        super().__init__()
        in_channels, length = input_shape
        convs, acts = [], []
        for _ in range(num_layers):
            convs.append(nn.Conv1d(in_channels, channels, kernel_size=5, stride=2, padding=2))
            acts.append(act())
            in_channels, length = channels, (length + 2 * 2 - 5) // 2 + 1
        self.convs = nn.ModuleList(convs)
        self.acts = nn.ModuleList(acts)
        self.fc = nn.Linear(channels * length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return self.fc(x.flatten(1))
