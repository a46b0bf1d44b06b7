"""Initialization as in OpenLTH (facebookresearch/open_lth, models/initializers.py and bn_initializers.py).

OpenLTH's defaults are `kaiming_normal` (torch's kaiming_normal_ with its defaults: fan_in, gain sqrt(2),
i.e. std = sqrt(2 / fan_in)) on every Linear and Conv weight, and `uniform` BatchNorm init (weight ~ U[0, 1),
bias 0).  What is ours:
  - every other bias (Linear, Conv) is set to 0 by default (`bias_init="zero"`); OpenLTH leaves PyTorch's
    default U(±1/sqrt(fan_in)) there, which `bias_init="uniform"` draws (from our generator, not scaled by
    `init_scale`);
  - every weight draw comes from an explicit torch.Generator seeded by `seed`, in module order, so the same
    seed gives bit-identical weights and the global RNG is never used;
  - Linear/Conv weights are multiplied by `init_scale` afterwards (the MLI studies sweep it);
  - Conv1d/Conv3d and BatchNorm1d/3d are treated like their 2-D versions (OpenLTH only knows the 2-D ones);
  - `remove_biases_` gives the bias-free twins the MLI studies need.
"""

import hashlib
import math
import numbers

import torch
from torch import nn

from losspath.errors import LosspathError

WEIGHTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


BIAS_INITS = ("zero", "uniform")


def check_init_args(*, seed: int, init_scale: float, bias_init: str = "zero") -> None:
    """Raise LosspathError unless seed is a non-negative integer, init_scale a positive finite number and
    bias_init one of BIAS_INITS."""
    if bias_init not in BIAS_INITS:
        raise LosspathError(f"bias_init must be one of {', '.join(BIAS_INITS)}, got {bias_init!r}.")
    if isinstance(init_scale, bool) or not isinstance(init_scale, numbers.Real) or not math.isfinite(init_scale) \
            or init_scale <= 0:
        raise LosspathError(f"init_scale must be a positive finite number, got {init_scale!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise LosspathError(f"The seed must be a non-negative integer, got {seed!r}.")


@torch.no_grad()
def initialize_(model: nn.Module, *, seed: int = 0, init_scale: float = 1.0, bias_init: str = "zero") -> nn.Module:
    """Re-initialize `model` in place, OpenLTH style (see module doc), and return it.

    Modules other than Linear/Conv/BatchNorm keep their parameters as they are.
    """
    check_init_args(seed=seed, init_scale=init_scale, bias_init=bias_init)
    generator = torch.Generator().manual_seed(int(seed))
    # uniform biases come from a stream of their own, so the weights do not depend on bias_init
    digest = hashlib.sha256(f"bias:{int(seed)}".encode()).digest()
    bias_generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    for module in model.modules():
        if isinstance(module, WEIGHTED_LAYERS):
            weight = torch.empty(module.weight.shape)  # drawn on CPU so every device gives the same numbers
            nn.init.kaiming_normal_(weight, generator=generator)
            module.weight.copy_(weight * float(init_scale))
            if module.bias is not None and bias_init == "uniform":  # torch's default: U(±1/sqrt(fan_in))
                bound = 1 / math.sqrt(weight[0].numel())
                module.bias.copy_(torch.rand(module.bias.shape, generator=bias_generator) * (2 * bound) - bound)
            elif module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, BATCH_NORMS) and module.weight is not None:
            module.weight.copy_(torch.rand(module.weight.shape, generator=generator))
            if module.bias is not None:
                module.bias.zero_()
    return model


def remove_biases_(model: nn.Module) -> nn.Module:
    """Delete every `bias` parameter (Linear, Conv and BatchNorm's shift) in place and return the model.

    Linear, Conv and BatchNorm all accept `bias=None` in forward, so the network still runs; BatchNorm keeps
    its scale.  Used by build_model(bias=False).
    """
    for module in model.modules():
        if isinstance(getattr(module, "bias", None), nn.Parameter):
            module.register_parameter("bias", None)
    return model
