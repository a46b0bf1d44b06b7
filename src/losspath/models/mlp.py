"""Fully connected nets: `mlp_W1_..._Wk` and LeNet-300-100.

Follows OpenLTH's mnist_lenet (facebookresearch/open_lth, models/mnist_lenet.py): flatten, hidden Linear
layers each followed by the activation, then a Linear head named `fc`.  LeNet-300-100 (LeCun et al. 1998,
as used by Frankle & Carbin 2019 and Frankle 2020) is `mlp_300_100`: 784-300-100-10 has 266,610 parameters.
Ours: the input size comes from `input_shape` instead of being fixed at 784, and with no hidden widths
(`mlp`) the net is plain softmax regression.
"""

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int], num_classes: int,
                 act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        widths = [math.prod(input_shape), *hidden]
        self.fc_layers = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.acts = nn.ModuleList(act() for _ in hidden)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer, act in zip(self.fc_layers, self.acts):
            x = act(layer(x))
        return self.fc(x)
