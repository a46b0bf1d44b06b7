"""The ImageNet ResNets of He et al. 2016 in torchvision's layout (what OpenLTH's imagenet_resnet wraps).

`imagenet_resnet_D[_W]` for D in 18, 34 (basic blocks) and 50, 101, 152 (bottleneck blocks); W is the
width of the first stage (default 64), as in OpenLTH (facebookresearch/open_lth, models/imagenet_resnet.py).
Layout and state-dict keys follow torchvision.models.resnet (conv1/bn1/maxpool/layer1..4/avgpool/fc, stride
on the bottleneck's 3x3 conv, "ResNet v1.5"; shortcut = 1x1 conv + BN where the shape changes), so
torchvision weights load directly.  imagenet_resnet_50 has 25,557,032 parameters with 1000 classes.
Ours: written here without torchvision, no OpenLTH `model.` key prefix, input channels from `input_shape`,
pluggable activation.  Initialization is done by build_model (OpenLTH's kaiming_normal, fan_in), not here.
"""

from collections.abc import Callable

import torch
from torch import nn

LAYOUTS = {  # depth -> (block type, blocks per stage)
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}


def downsample_if_needed(f_in: int, f_out: int, stride: int) -> nn.Module | None:
    if stride == 1 and f_in == f_out:
        return None
    return nn.Sequential(nn.Conv2d(f_in, f_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(f_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, f_in: int, planes: int, stride: int, act: Callable[[], nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(f_in, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample_if_needed(f_in, planes, stride)
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, f_in: int, planes: int, stride: int, act: Callable[[], nn.Module]):
        super().__init__()
        f_out = planes * self.expansion
        self.conv1 = nn.Conv2d(f_in, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act()
        self.conv3 = nn.Conv2d(planes, f_out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(f_out)
        self.downsample = downsample_if_needed(f_in, f_out, stride)
        self.act3 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + identity)


class ImageNetResNet(nn.Module):
    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int,
                 act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        kind, blocks_per_stage = LAYOUTS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = act()  # torchvision's name, kept for state-dict compatibility of the layout
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        f_in = width
        stages = []
        for stage, num_blocks in enumerate(blocks_per_stage):
            planes = width * 2**stage
            blocks = []
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block(f_in, planes, stride, act))
                f_in = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(f_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc(x)
