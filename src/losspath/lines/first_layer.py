"""Exact first-layer shortcut: the first layer is linear in its weight, so evaluate it twice, not once per α.

For a Linear or Conv layer applied to the raw input x,
    W(α) x + b(α) = (1 − a)·(W_start x) + a·(W_end x) + b(α),        a = a(α) the weight's coefficient,
and W_start x, W_end x do not depend on α. Inside `torch.func.vmap` over α they are unbatched, so vmap computes
them once per batch and only the cheap blend runs per α. For LeNet-300-100 the first layer holds 88% of the
forward FLOPs, so this removes most of the cost of a 100-point line. The identity holds for any input; we only
apply it where the input is the raw input (possibly reshaped), because only there is it unbatched and free.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .probe import probe_calls

# Exact types: a subclass may override forward with something non-linear in the weight (weight standardization).
LINEAR_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def find_first_layer(model: nn.Module, inputs: torch.Tensor, state: dict | None = None) -> str | None:
    """Name of the first Linear/Conv module whose input is the model's raw input (possibly reshaped).

    Found with hooks during a forward pass of `inputs` (with `state` loaded functionally, if given; the model's
    own tensors otherwise). The input check compares values, so a view or flatten of x passes and any
    transformation (normalization, scaling) does not. Returns None (no shortcut)
    when there is no such module, or it is called more than once, or its weight is shared with another module.
    """
    calls = probe_calls(model, inputs, [name for name, m in model.named_modules() if type(m) in LINEAR_TYPES], state)
    candidates = [name for name, x in calls if isinstance(x, torch.Tensor) and _same_values(x, inputs)]
    if not candidates:
        return None
    first = candidates[0]
    if sum(1 for name, _ in calls if name == first) != 1:
        return None
    module = model.get_submodule(first)
    shared = [n for n, p in model.named_parameters(remove_duplicate=False) if p is module.weight]
    if len(shared) != 1:
        return None
    return first


def _same_values(x: torch.Tensor, raw: torch.Tensor) -> bool:
    return x.numel() == raw.numel() and x.dtype == raw.dtype and torch.equal(x.reshape(-1), raw.reshape(-1))


class FirstLayerShortcut(nn.Module):
    """Stands in for the first layer inside the vmapped forward.

    Per-α tensors arrive through `functional_call` as buffers: `weight_coef` (a) and, when the bias moves
    independently of the weight, `bias`. The endpoint weights are plain attributes, so they stay unbatched.
    Modes, chosen per chunk of α so the blend is as cheap as possible and exact at a = 0 and a = 1:
      "lerp"            lerp(W_s x + b_s, W_e x + b_e, a)   bias coefficient equal to a, or bias held (b_s = b_e)
      "lerp_plus_bias"  lerp(W_s x, W_e x, a) + b(α)         any other bias coefficient
      "held"            W x + b(α)                           weight held at one endpoint
    The endpoint outputs are cached until `new_batch()`, so the α of one batch split over several vmapped calls
    still cost two first-layer evaluations in all. The caller must call `new_batch()` whenever x changes.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = [layer]  # a list hides it from named_modules / functional_call
        self.register_buffer("weight_coef", torch.zeros(()))
        self.register_buffer("bias", None)
        self.configure("lerp", None, None)

    def configure(self, mode, weight_start, weight_end, bias_start=None, bias_end=None):
        self.mode = mode
        self.weight_start, self.weight_end = weight_start, weight_end
        self.bias_start, self.bias_end = bias_start, bias_end
        self.new_batch()

    def new_batch(self) -> None:
        self.cache = None

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        layer = self.layer[0]
        if isinstance(layer, nn.Linear):
            return F.linear(x, weight)
        return layer._conv_forward(x, weight, None)

    def _shape(self, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        # bias over the channel dimension: (C,) for Linear, (C, 1, 1) for Conv2d
        return b if isinstance(self.layer[0], nn.Linear) else b.view(-1, *([1] * (out.dim() - 2)))

    def _endpoint_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.mode == "held":
            return (self._apply_weight(x, self.weight_start),)
        u, v = self._apply_weight(x, self.weight_start), self._apply_weight(x, self.weight_end)
        if self.mode == "lerp" and self.bias_start is not None:
            u, v = u + self._shape(self.bias_start, u), v + self._shape(self.bias_end, v)
        return u, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache is None or self.cache[0].shape[0] != x.shape[0]:
            self.cache = self._endpoint_outputs(x)
        if self.mode == "held":  # a copy (unless the bias makes one), so an in-place op cannot change the cache
            out = self.cache[0] if self.bias is not None else self.cache[0].clone()
        else:
            u, v = self.cache  # bfloat16 under bf16 autocast: blended in the coefficient's dtype (the model's)
            if u.dtype != self.weight_coef.dtype:
                u, v = u.to(self.weight_coef.dtype), v.to(self.weight_coef.dtype)
            out = torch.lerp(u, v, self.weight_coef)
            if self.mode == "lerp":
                return out
        return out if self.bias is None else out + self._shape(self.bias, out)
