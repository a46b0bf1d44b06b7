"""`deeplinear_R[_W]` and `deeprelu_R[_W]`: the r-homogeneous "simple model" of Wang et al. 2023.

Wang et al. 2023 ("Plateau in monotonic linear interpolation — a biased view") explain why last-layer biases
differ between classes even on perfectly balanced data with a network whose output is r-homogeneous in its
weights and that has a bias only on its output:  f(x) = W_r σ(W_{r-1} ... σ(W_1 x)) + b.

Here: R Linear layers (R >= 1) of width W (default 16), no bias on layers 1..R-1, a bias on the last layer
(named `fc`, like the head of every other registry net, so `fc.bias` is the last-layer bias), flatten first.
`deeplinear` has no activation at all (a deep linear network: the end-to-end weight is the product
W_R ... W_1, row k for class k); `deeprelu` puts the activation build_model is given (ReLU by default)
between the layers. With R = 1 both are softmax regression. `deeplinear` ignores `activation=`.
"""

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn


class DeepHomogeneous(nn.Module):
    def __init__(self, input_shape: Sequence[int], depth: int, width: int, num_classes: int,
                 act: Callable[[], nn.Module] | None = None):
        super().__init__()
        widths = [math.prod(input_shape)] + [width] * (depth - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:]))
        self.acts = nn.ModuleList((act or nn.Identity)() for _ in self.layers)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer, act in zip(self.layers, self.acts):
            x = act(layer(x))
        return self.fc(x)


def end_to_end_weight(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """W_R ... W_1 (classes × inputs) of a `deeplinear` state; row k is class k's end-to-end weight.

    For `deeprelu` nets this is the product of the layer matrices, which is the network's linear map only on
    inputs where every unit is active (the toy study reads it as a summary of the weights either way).
    """
    hidden = sorted((k for k in state if k.startswith("layers.") and k.endswith(".weight")),
                    key=lambda k: int(k.split(".")[1]))
    w = state["fc.weight"].double()
    for k in reversed(hidden):
        w = w @ state[k].double()
    return w
