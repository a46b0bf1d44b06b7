"""A probe forward pass: which modules are called, in what order, with what input."""
from __future__ import annotations

import torch
from torch import nn

from .data_source import as_inputs


def probe_calls(model: nn.Module, inputs: torch.Tensor, names: list[str],
                state: dict | None = None) -> list[tuple[str, object]]:
    """(name, first positional input) of every call of the modules `names` during one forward of `inputs`.

    `inputs`: a tensor, a dict of keyword inputs, a tuple of positional inputs or an `Inputs`. `state` (optional)
    is loaded functionally for the probe; the model's own tensors are used otherwise.
    """
    calls: list[tuple[str, object]] = []
    handles = [model.get_submodule(name).register_forward_pre_hook(
        lambda mod, args, name=name: calls.append((name, args[0] if args else None))) for name in names]
    args, kwargs = as_inputs(inputs)
    try:
        with torch.inference_mode():
            if state is None:
                model(*args, **kwargs)
            else:
                torch.func.functional_call(model, state, args, kwargs)
    finally:
        for h in handles:
            h.remove()
    return calls
