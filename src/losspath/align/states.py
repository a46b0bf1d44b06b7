"""The two states to align: resolved from dicts, modules, checkpoint files or "RUN_DIR@STEP", and checked
against the model (the same keys and shapes), in one sentence when they do not fit."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import LosspathError
from ..keys import State


def resolve(ref, which: str) -> State:
    """A state dict from a dict, an nn.Module, a .safetensors/.pt path or "RUN_DIR@STEP"."""
    from ..checkpoints import load_state
    from ..store import checkpoint_path, parse_run_reference

    if isinstance(ref, nn.Module):
        ref = ref.state_dict()
    if isinstance(ref, dict):
        if not all(isinstance(v, torch.Tensor) for v in ref.values()):
            raise LosspathError(f"The {which} state has entries that are not tensors.")
        return {k: v.detach() for k, v in ref.items()}
    if isinstance(ref, (str, Path)):
        reference = parse_run_reference(str(ref)) if not Path(ref).is_file() else None
        if reference is not None:
            run_dir, step = reference
            return load_state(checkpoint_path(run_dir, int(step) if step.strip().isdigit() else step))
        return load_state(Path(ref))
    raise LosspathError(f"The {which} state must be a state dict, a module, a checkpoint path or 'RUN_DIR@STEP', "
                        f"not {type(ref).__name__}.")


def check_states(model: nn.Module, a: State, b: State) -> None:
    """Raise one LosspathError if either state lacks a key of the model, has an extra one, or a shape differs."""
    reference = model.state_dict()
    for which, state in (("first", a), ("second", b)):
        missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
        shapes = [k for k in reference if k in state and tuple(state[k].shape) != tuple(reference[k].shape)]
        if missing or extra or shapes:
            parts = [f"lacks {', '.join(missing[:3])}" if missing else "", f"has unexpected {', '.join(extra[:3])}"
                     if extra else "", f"has other shapes for {', '.join(shapes[:3])}" if shapes else ""]
            raise LosspathError(f"The {which} state does not fit the model: it "
                                + "; ".join(p for p in parts if p) + ".")
