"""Model registry: a name such as `cifar_resnet_20` -> an initialized plain nn.Module.

Names are parsed the OpenLTH way (facebookresearch/open_lth, models/registry.py): a family prefix followed by
`_`-separated integers (depth, widths).  build_model then (1) constructs the net with the global RNG state
saved and restored, (2) deletes every bias if bias=False, and (3) initializes it OpenLTH style from a
generator seeded by `seed` (see init.py), so the result depends only on the arguments.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from losspath.errors import LosspathError
from losspath.models.activations import make_activation
from losspath.models.cifar_resnet import CifarResNet
from losspath.models.cifar_vgg import PLANS, CifarVGG
from losspath.models.conv1d import ConvNet1d
from losspath.models.convnet import ConvNet6
from losspath.models.imagenet_resnet import LAYOUTS, ImageNetResNet
from losspath.models.init import check_init_args, initialize_, remove_biases_
from losspath.models.mlp import MLP
from losspath.models.toy import DeepHomogeneous

Act = Callable[[], nn.Module]


@dataclass(frozen=True)
class Family:
    pattern: str  # for help text
    regex: str  # full match; groups are the integers in the name
    input_dims: int | None  # 3 = (C, H, W), 2 = (C, L), None = any shape (flattened)
    build: Callable[[str, tuple[int, ...], tuple[int, ...], int, Act], nn.Module]


def _resnet_depth(name: str, depth: int) -> int:
    if depth < 8 or (depth - 2) % 6 != 0:
        raise LosspathError(f"The depth in {name!r} must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), "
                            f"got {depth}.")
    return depth


def _width(name: str, width: str | None, default: int) -> int:
    if width is None:
        return default
    if int(width) < 1:
        raise LosspathError(f"The width in {name!r} must be a positive integer.")
    return int(width)


def _build_mlp(name, groups, shape, classes, act):
    hidden = [int(w) for w in groups[0].split("_") if w]
    if any(w < 1 for w in hidden):
        raise LosspathError(f"Every hidden width in {name!r} must be a positive integer.")
    return MLP(shape, hidden, classes, act)


def _build_cifar_resnet(name, groups, shape, classes, act):
    return CifarResNet(_resnet_depth(name, int(groups[0])), _width(name, groups[1], 16), shape[0], classes, act)


def _build_cifar_vgg(name, groups, shape, classes, act):
    depth = int(groups[0])
    if depth not in PLANS:
        raise LosspathError(f"cifar_vgg depth must be one of {sorted(PLANS)}, got {depth} in {name!r}.")
    if min(shape[1:]) < 16:
        raise LosspathError(f"{name!r} max-pools four times and needs images of at least 16x16, got {shape}.")
    return CifarVGG(depth, shape[0], classes, act)


def _build_imagenet_resnet(name, groups, shape, classes, act):
    depth = int(groups[0])
    if depth not in LAYOUTS:
        raise LosspathError(f"imagenet_resnet depth must be one of {sorted(LAYOUTS)}, got {depth} in {name!r}.")
    return ImageNetResNet(depth, _width(name, groups[1], 64), shape[0], classes, act)


def _build_resnet1d(name, groups, shape, classes, act):
    return CifarResNet(_resnet_depth(name, int(groups[0])), _width(name, groups[1], 16), shape[0], classes, act, dims=1)


def _build_deep(name, groups, shape, classes, act):
    depth = int(groups[1])
    if depth < 1:
        raise LosspathError(f"The depth in {name!r} must be at least 1.")
    return DeepHomogeneous(shape, depth, _width(name, groups[2], 16), classes, act if groups[0] == "relu" else None)


FAMILIES = [
    Family("mlp", r"mlp()", None, _build_mlp),
    Family("mlp_W1[_W2...]", r"mlp((?:_\d+)+)", None, _build_mlp),
    Family("lenet_300_100", r"lenet(_300_100)", None, _build_mlp),
    Family("cifar_resnet_D[_W]", r"cifar_resnet_(\d+)(?:_(\d+))?", 3, _build_cifar_resnet),
    Family("cifar_vgg_D", r"cifar_vgg_(\d+)", 3, _build_cifar_vgg),
    Family("imagenet_resnet_D[_W]", r"imagenet_resnet_(\d+)(?:_(\d+))?", 3, _build_imagenet_resnet),
    Family("resnet1d_D[_W]", r"resnet1d_(\d+)(?:_(\d+))?", 2, _build_resnet1d),
    Family("conv1d", r"conv1d", 2, lambda name, groups, shape, classes, act: ConvNet1d(shape, classes, act)),
    Family("convnet6[_W]", r"convnet6(?:_(\d+))?", 3,
           lambda name, groups, shape, classes, act: ConvNet6(shape[0], classes, _width(name, groups[0], 32), act)),
    Family("deeplinear_R[_W]", r"deep(linear)_(\d+)(?:_(\d+))?", None, _build_deep),
    Family("deeprelu_R[_W]", r"deep(relu)_(\d+)(?:_(\d+))?", None, _build_deep),
]

_HELP = {
    "mlp": "softmax regression (one Linear)",
    "mlp_W1[_W2...]": "fully connected ReLU net with hidden widths W1, W2, ...",
    "lenet_300_100": "LeNet-300-100, the same as mlp_300_100",
    "cifar_resnet_D[_W]": "CIFAR ResNet, D = 6n + 2, first-stage width W (default 16)",
    "cifar_vgg_D": "CIFAR VGG with BatchNorm, D in 11, 13, 16, 19",
    "imagenet_resnet_D[_W]": "ImageNet ResNet, D in 18, 34, 50, 101, 152, width W (default 64)",
    "resnet1d_D[_W]": "1-D CIFAR-style ResNet for mnist1d, D = 6n + 2, width W (default 16)",
    "conv1d": "small 1-D convnet for mnist1d (3 conv layers of 32 channels)",
    "convnet6[_W]": "6-layer convnet after Liao & Poggio (4 conv3x3 + linear), width W (default 32)",
    "deeplinear_R[_W]": "R-layer linear net, width W (default 16), bias only on the output (Wang et al. 2023 toy)",
    "deeprelu_R[_W]": "R-layer ReLU net, width W (default 16), bias only on the output (Wang et al. 2023 toy)",
}


def model_names() -> list[str]:
    """The name patterns build_model accepts (for help text)."""
    return [family.pattern for family in FAMILIES]


def describe_models() -> list[tuple[str, str]]:
    """(pattern, one-line description) for every name pattern, for longer help text."""
    return [(family.pattern, _HELP[family.pattern]) for family in FAMILIES]


def _check_input_shape(name: str, input_shape, dims: int | None) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise LosspathError(f"input_shape must be a tuple of integers such as (3, 32, 32), got {input_shape!r}.") \
            from None
    if not shape or any(d < 1 for d in shape):
        raise LosspathError(f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}.")
    expected = {2: "(channels, length)", 3: "(channels, height, width)"}
    if dims is not None and len(shape) != dims:
        raise LosspathError(f"Model {name!r} expects an input_shape of the form {expected[dims]} "
                            f"(no batch dimension), got {shape}.")
    return shape


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, *, init_scale: float = 1.0,
                activation: str = "relu", bias: bool = True, seed: int = 0, poly_degree: int = 2,
                poly_interval: float = 4.0, bias_init: str = "zero") -> nn.Module:
    """Build and initialize the model called `name` for inputs of `input_shape` (without the batch dimension).

    `activation` is "relu" or "poly" (PolyReLU of the given degree, fitted on [-poly_interval, poly_interval]);
    `bias=False` deletes every bias, BatchNorm shifts included; weights are OpenLTH's kaiming_normal (times
    `init_scale`), BatchNorm scales U[0, 1), biases 0 (`bias_init="uniform"`: Linear/Conv biases as OpenLTH
    leaves them, U(±1/sqrt(fan_in))), all drawn from a generator seeded by `seed`.
    The global RNG state is left as it was.
    """
    if not isinstance(name, str):
        raise LosspathError(f"The model name must be a string, got {name!r}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise LosspathError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if not isinstance(bias, bool):
        raise LosspathError(f"bias must be True or False, got {bias!r}.")
    check_init_args(seed=seed, init_scale=init_scale, bias_init=bias_init)
    act = make_activation(activation, poly_degree, poly_interval)
    for family in FAMILIES:
        match = re.fullmatch(family.regex, name)
        if match:
            break
    else:
        raise LosspathError(f"Unknown model name {name!r}; valid patterns: {', '.join(model_names())}.")
    shape = _check_input_shape(name, input_shape, family.input_dims)
    with torch.random.fork_rng(devices=[]):  # nn.Module constructors draw default inits from the global RNG
        model = family.build(name, match.groups(), shape, num_classes, act)
    if not bias:
        remove_biases_(model)
    return initialize_(model, seed=seed, init_scale=init_scale, bias_init=bias_init)


def num_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (what the parameter counts in the docstrings refer to)."""
    return sum(math.prod(p.shape) for p in model.parameters())
