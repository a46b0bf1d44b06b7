"""A probe forward pass: which modules are called, in what order, with what input."""
from __future__ import annotations

import torch
from torch import nn


def probe_calls(model: nn.Module, inputs: torch.Tensor, names: list[str],
                state: dict | None = None) -> list[tuple[str, object]]:
    """(name, first positional input) of every call of the modules `names` during one forward of `inputs`.

    `state` (optional) is loaded functionally for the probe; the model's own tensors are used otherwise.
    """
    calls: list[tuple[str, object]] = []
    handles = [model.get_submodule(name).register_forward_pre_hook(
        lambda mod, args, name=name: calls.append((name, args[0] if args else None))) for name in names]
    try:
        with torch.inference_mode():
            if state is None:
                model(inputs)
            else:
                torch.func.functional_call(model, state, (inputs,))
    finally:
        for h in handles:
            h.remove()
    return calls
