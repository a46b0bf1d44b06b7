"""VGG for CIFAR-10 (Simonyan & Zisserman 2015), as in OpenLTH's cifar_vgg.

`cifar_vgg_D` for D in 11, 13, 16, 19.  As in OpenLTH (facebookresearch/open_lth, models/cifar_vgg.py):
3x3 convs (with bias, padding 1) each followed by BatchNorm and ReLU, 2x2 max pooling between stages (the
'M' entries of the plan), 2x2 average pooling of the final 2x2 map, and one Linear 512 -> classes.
cifar_vgg_16 has 14,728,266 parameters with 10 classes.
Ours: the number of input channels comes from `input_shape`, the activation is pluggable, and the final
pooling is adaptive (to 1x1), which is OpenLTH's AvgPool2d(2) for 32x32 inputs and also accepts larger ones.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

PLANS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class ConvModule(nn.Module):
    """conv3x3 -> BatchNorm -> activation."""

    def __init__(self, f_in: int, f_out: int, act: Callable[[], nn.Module]):
        super().__init__()
        self.conv = nn.Conv2d(f_in, f_out, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(f_out)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class CifarVGG(nn.Module):
    def __init__(self, depth: int, in_channels: int, num_classes: int, act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        layers, f_in = [], in_channels
        for spec in PLANS[depth]:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(ConvModule(f_in, spec, act))
                f_in = spec
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)
