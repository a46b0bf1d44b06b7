"""What moves with α: interpolation schemes as one rule per state-dict key.

Every key gets a coefficient c(α) and sits at (1 − c)·start + c·end:
  all          every parameter and floating buffer: c = α (Goodfellow et al. 2015; Frankle 2020).
  weights      non-bias keys c = α; biases held at `hold` (c = 0 for "start", 1 for "end").
  biases       biases c = α; every non-bias key held at `hold` (Wang et al. 2023, the "biased view").
  homogeneous  non-bias keys c = α; the bias of the layer at depth ℓ gets c = α^ℓ, i.e.
               b(α) = (1 − α^ℓ)·b_start + α^ℓ·b_end.
  homogeneous_output  as `all`, except the output layer's bias (the deepest layer owning a bias, depth L):
               c = α^L. Beside `homogeneous` it shows which biases make a plateau: the output bias alone,
               or the hidden ones too.
  [prefixes]   keys under the listed module/parameter names c = α, the rest held at `hold`.

Homogeneous scheme, our reading of Wang et al. 2023 ("Plateau in monotonic linear interpolation — a biased
view"): they observe that moving biases linearly breaks the homogeneity of a ReLU net in its parameters, which
creates the plateau. Scaling the layer-ℓ bias like the product of the ℓ weight coefficients below it restores
it: interpolating from the all-zero state, layer ℓ's output is exactly α^ℓ times the end network's, so the
logits of an L-layer bias-ful ReLU MLP are α^L · f_end(x) and the predicted classes never change along the line.

Depth ℓ: the rank (1 = first) of a module in the order its first call happens during a probe forward pass,
counting only modules that own parameters directly (Linear, Conv, BatchNorm, LayerNorm, ...). A bias belongs to
its module, so a BatchNorm affine bias gets its BN layer's own depth; a conv → BN → ReLU block therefore spans
two depths. Modules never called in the probe are ranked after the called ones, in registration order.

"Bias" means a key whose last name component ends in "bias" (`keys.is_bias`). Floating buffers count as non-bias
keys; BatchNorm running statistics (keys ending in running_mean/running_var) then follow `batchnorm=`:
"interpolate" keeps the scheme's rule, "start"/"end" pin them to that endpoint, "recompute" re-estimates them at
every α. Integer buffers (num_batches_tracked) are never interpolated: they take the end state's value.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import LosspathError
from ..keys import State, is_bias, is_bn_stat, module_of
from .probe import probe_calls

SCHEMES = ("all", "weights", "biases", "homogeneous", "homogeneous_output")
DEPTH_SCHEMES = ("homogeneous", "homogeneous_output")  # schemes that need layer depths
BATCHNORM_MODES = ("interpolate", "recompute", "start", "end")


@dataclass(frozen=True)
class Rule:
    """How one tensor moves: held at an endpoint (constant 0 = start, 1 = end), c = α^power, or recomputed."""

    constant: int | None = None
    power: int = 1
    recompute: bool = False

    def coefficients(self, alphas: torch.Tensor) -> torch.Tensor:
        if self.constant is not None:
            return torch.full_like(alphas, float(self.constant))
        return alphas**self.power


BN_RULES = {"start": Rule(constant=0), "end": Rule(constant=1), "recompute": Rule(recompute=True)}


def _under(key: str, prefix: str) -> bool:
    """Prefixes match whole name components: "layer1" matches "layer1.0.weight", not "layer10.weight"."""
    if prefix.endswith("."):
        return key.startswith(prefix)
    return key == prefix or key.startswith(prefix + ".")


def line_rules(keys: list[str], reference: State, scheme="all", *, hold: str = "end",
               batchnorm: str = "interpolate", depths: dict[str, int] | None = None) -> dict[str, Rule]:
    """One Rule per key of the state (see the module docstring for the schemes)."""
    if hold not in ("start", "end"):
        raise LosspathError(f"hold must be 'start' or 'end', not {hold!r}.")
    if batchnorm not in BATCHNORM_MODES:
        raise LosspathError(f"batchnorm must be one of {', '.join(BATCHNORM_MODES)}, not {batchnorm!r}.")
    held = Rule(constant=0 if hold == "start" else 1)
    prefixes = None
    if isinstance(scheme, (list, tuple)):
        prefixes = [str(p) for p in scheme]
        unused = [p for p in prefixes if not any(_under(k, p) for k in keys)]
        if unused:
            raise LosspathError(f"Scheme prefixes {', '.join(unused)} match no key of the state.")
    elif scheme not in SCHEMES:
        raise LosspathError(f"scheme must be one of {', '.join(SCHEMES)} or a list of name prefixes, not {scheme!r}.")
    if scheme in DEPTH_SCHEMES and depths is None:
        raise LosspathError(f"The {scheme} scheme needs layer depths (from schemes.layer_depths).")
    output = None
    if scheme == "homogeneous_output":
        with_bias = [module_of(k) for k in keys if is_bias(k) and reference[k].is_floating_point()]
        output = max(with_bias, key=lambda name: depths.get(name, 0), default=None)

    rules = {}
    for k in keys:
        if not reference[k].is_floating_point():
            rules[k] = Rule(constant=1)
        elif is_bn_stat(k) and batchnorm != "interpolate":
            rules[k] = BN_RULES[batchnorm]
        elif prefixes is not None:
            rules[k] = Rule() if any(_under(k, p) for p in prefixes) else held
        elif scheme == "all":
            rules[k] = Rule()
        elif scheme == "weights":
            rules[k] = held if is_bias(k) else Rule()
        elif scheme == "biases":
            rules[k] = Rule() if is_bias(k) else held
        elif scheme == "homogeneous_output":
            rules[k] = Rule(power=_depth(depths, k)) if is_bias(k) and module_of(k) == output else Rule()
        else:  # homogeneous
            rules[k] = Rule(power=_depth(depths, k)) if is_bias(k) else Rule()
    return rules


def _depth(depths: dict[str, int], key: str) -> int:
    name = module_of(key)
    if name not in depths:
        raise LosspathError(f"No layer depth is known for {key} (module {name!r}).")
    return depths[name]


def layer_depths(model: nn.Module, inputs: torch.Tensor, state: State | None = None) -> dict[str, int]:
    """Depth of every module owning parameters: its rank in first-call order during a forward of `inputs`.

    `state` (optional) is loaded functionally for the probe; the model's own weights are used otherwise.
    """
    owners = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    order = [name for name, _ in probe_calls(model, inputs, owners, state)]
    ranked = list(dict.fromkeys(order)) + [n for n in owners if n not in order]
    return {name: i + 1 for i, name in enumerate(ranked)}
