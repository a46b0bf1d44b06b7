"""The CIFAR ResNet of He et al. 2016 (Deep Residual Learning, Sec. 4.2), as in OpenLTH's cifar_resnet.

`cifar_resnet_D[_W]`: D = 6n + 2 layers, i.e. a 3x3 stem conv, three stages of n basic blocks with W, 2W
and 4W filters (stride 2 at the start of stages 2 and 3), global average pooling and a linear head.  As in
OpenLTH (facebookresearch/open_lth, models/cifar_resnet.py): 3x3 convs without bias, each followed by
BatchNorm; the shortcut is a 1x1 stride-2 conv + BatchNorm where the shape changes (He et al.'s option B),
identity otherwise.  cifar_resnet_20 (W = 16) has 272,474 parameters with 10 classes.
Ours: the number of input channels comes from `input_shape`, the activation is pluggable, pooling is
adaptive (identical to OpenLTH's avg_pool2d over the whole map for square inputs), and `dims=1` gives the
same network for 1-D signals (Conv1d/BatchNorm1d; `resnet1d_D[_W]` for mnist1d, 40 -> 20 -> 10 along the
stages).
"""

from collections.abc import Callable

import torch
from torch import nn


CONV = {1: nn.Conv1d, 2: nn.Conv2d}
BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class Block(nn.Module):
    """A basic residual block: two 3x3 (or kernel-3) conv-BN layers around a shortcut."""

    def __init__(self, f_in: int, f_out: int, downsample: bool, act: Callable[[], nn.Module], dims: int = 2):
        super().__init__()
        conv, bn = CONV[dims], BATCHNORM[dims]
        stride = 2 if downsample else 1
        self.conv1 = conv(f_in, f_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(f_out)
        self.act1 = act()
        self.conv2 = conv(f_out, f_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = bn(f_out)
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(
                conv(f_in, f_out, kernel_size=1, stride=stride, bias=False),
                bn(f_out),
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
                 act: Callable[[], nn.Module] = nn.ReLU, dims: int = 2):
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.conv = CONV[dims](in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn = BATCHNORM[dims](width)
        self.act = act()
        blocks, f_in = [], width
        for stage, f_out in enumerate([width, 2 * width, 4 * width]):
            for index in range(blocks_per_stage):
                blocks.append(Block(f_in, f_out, downsample=stage > 0 and index == 0, act=act, dims=dims))
                f_in = f_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = out.flatten(2).mean(2)  # global average pooling, any number of spatial dimensions
        return self.fc(out)
