"""What a state-dict key names: a state, and the predicates that tell a bias, a weight, a BatchNorm statistic
and a counter apart.

A key is a dotted path, "module.submodule.tensor"; its last component names the tensor. Code that holds only a
state dict (checkpoint files, line endpoints, permutations of a saved state) decides by that last component, here
and nowhere else:
  bias        the last component ends in "bias" ("fc.bias", and attention's "in_proj_bias").
  weight      the last component ends in "weight" ("fc.weight", "in_proj_weight").
  BN stat     BatchNorm running statistics: "running_mean", "running_var".
  counter     BatchNorm's integer batch counter: "num_batches_tracked".
  buffer      a BN statistic or a counter: what is not a parameter of the usual layers.
Where a module is at hand, its own registry is exact and is used instead: `named_parameters()` against
`named_buffers()`, or the BatchNorm modules themselves (lines/batchnorm.py, align/trace.py do so).
"""
from __future__ import annotations

import torch

State = dict[str, torch.Tensor]
BN_STATS = ("running_mean", "running_var")
COUNTER = "num_batches_tracked"


def tensor_name(key: str) -> str:
    """The last component of a key: "layer1.0.bn1.running_var" → "running_var"."""
    return key.rsplit(".", 1)[-1]


def module_of(key: str) -> str:
    """The module owning a key: "layer1.0.bn1.running_var" → "layer1.0.bn1"; "" for a top-level tensor."""
    return key.rsplit(".", 1)[0] if "." in key else ""


def is_bias(key: str) -> bool:
    return tensor_name(key).endswith("bias")


def is_weight(key: str) -> bool:
    return tensor_name(key).endswith("weight")


def is_bn_stat(key: str) -> bool:
    return tensor_name(key) in BN_STATS


def is_counter(key: str) -> bool:
    return tensor_name(key) == COUNTER


def is_buffer(key: str) -> bool:
    """A BatchNorm statistic or counter: everything else in a state dict is taken for a parameter."""
    return is_bn_stat(key) or is_counter(key)
