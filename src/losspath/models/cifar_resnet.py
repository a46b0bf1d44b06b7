"""The CIFAR ResNet of He et al. 2016 (Deep Residual Learning, Sec. 4.2), as in OpenLTH's cifar_resnet.

`cifar_resnet_D[_W]`: D = 6n + 2 layers, i.e. a 3x3 stem conv, three stages of n basic blocks with W, 2W
and 4W filters (stride 2 at the start of stages 2 and 3), global average pooling and a linear head.  As in
OpenLTH (facebookresearch/open_lth, models/cifar_resnet.py): 3x3 convs without bias, each followed by
BatchNorm; the shortcut is a 1x1 stride-2 conv + BatchNorm where the shape changes (He et al.'s option B),
identity otherwise.  cifar_resnet_20 (W = 16) has 272,474 parameters with 10 classes.
Ours: the number of input channels comes from `input_shape`, the activation is pluggable, and pooling is
adaptive (identical to OpenLTH's avg_pool2d over the whole map for square inputs).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """A basic residual block: two 3x3 conv-BN layers around a shortcut."""

    def __init__(self, f_in: int, f_out: int, downsample: bool, act: Callable[[], nn.Module]):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.act1 = act()
        self.conv2 = nn.Conv2d(f_out, f_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(f_in, f_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(f_out),
            )
        else:
            self.shortcut = nn.Sequential()
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int,
                 act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.act = act()
        blocks, f_in = [], width
        for stage, f_out in enumerate([width, 2 * width, 4 * width]):
            for index in range(blocks_per_stage):
                blocks.append(Block(f_in, f_out, downsample=stage > 0 and index == 0, act=act))
                f_in = f_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)
