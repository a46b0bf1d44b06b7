"""1-D networks for mnist1d signals (N, 1, 40).  Both are ours.

`resnet1d_D[_W]`: the CIFAR ResNet of He et al. 2016 / OpenLTH's cifar_resnet (see cifar_resnet.py) with
every Conv2d/BatchNorm2d replaced by Conv1d/BatchNorm1d: D = 6n + 2, stages of W, 2W, 4W filters (default
W = 16), kernel 3, bias-free convs + BN, 1x1 conv + BN shortcut where the shape changes, global average
pooling, linear head.  A 40-long signal becomes 40 -> 20 -> 10 along the stages.

`conv1d`: a small convnet in the spirit of the mnist1d reference convnet (Greydanus 2020): three Conv1d
layers of 32 channels, kernel 5, stride 2, padding 2, no BatchNorm, each followed by the activation, then
flatten and a Linear head (40 -> 20 -> 10 -> 5, so 32 * 5 = 160 features for mnist1d).
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Block1d(nn.Module):
    """A basic residual block: two kernel-3 conv-BN layers around a shortcut."""

    def __init__(self, f_in: int, f_out: int, downsample: bool, act: Callable[[], nn.Module]):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv1d(f_in, f_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(f_out)
        self.act1 = act()
        self.conv2 = nn.Conv1d(f_out, f_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(f_out)
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(
                nn.Conv1d(f_in, f_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm1d(f_out),
            )
        else:
            self.shortcut = nn.Sequential()
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet1d(nn.Module):
    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int,
                 act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.conv = nn.Conv1d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm1d(width)
        self.act = act()
        blocks, f_in = [], width
        for stage, f_out in enumerate([width, 2 * width, 4 * width]):
            for index in range(blocks_per_stage):
                blocks.append(Block1d(f_in, f_out, downsample=stage > 0 and index == 0, act=act))
                f_in = f_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = F.adaptive_avg_pool1d(out, 1).flatten(1)
        return self.fc(out)


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
