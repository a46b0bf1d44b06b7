"""Model registry: `build_model(name, input_shape, num_classes, ...)` returns an initialized plain nn.Module.

Families (see model_names()): mlp / LeNet-300-100, OpenLTH's cifar_resnet and cifar_vgg, torchvision-layout
ImageNet ResNets, a 1-D ResNet and a small 1-D convnet for mnist1d, and a 6-layer convnet after Liao & Poggio.
Every net accepts activation="poly" (PolyReLU, Liao & Poggio's polynomial nets) and bias=False.
"""

from losspath.models.activations import ACTIVATIONS, PolyReLU, fit_relu_polynomial, make_activation
from losspath.models.init import initialize_, remove_biases_
from losspath.models.registry import build_model, describe_models, model_names, num_parameters

__all__ = [
    "ACTIVATIONS",
    "PolyReLU",
    "build_model",
    "describe_models",
    "fit_relu_polynomial",
    "initialize_",
    "make_activation",
    "model_names",
    "num_parameters",
    "remove_biases_",
]
