"""Endpoint states of a line: loading (dicts, files, run references), validation, interpolation.

A point on the line is θ(α) = (1 − c)·θ_start + c·θ_end per tensor, with c = c(α) given by the scheme
(`schemes.py`); c = α for plain linear interpolation (Goodfellow et al. 2015; Frankle 2020, §2).
We use this form rather than θ_start + c·(θ_end − θ_start) because it reproduces the endpoints:
c = 0 and c = 1 are additionally copied, so θ(0) is the start and θ(1) the end bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import LosspathError
from ..keys import State
from .schemes import line_rules


def resolve_state(ref, which: str = "endpoint") -> State:
    """A state dict from a dict, a `.safetensors`/`.pt` path, "RUN_DIR@STEP", or a (run_dir, step) tuple."""
    from ..checkpoints import load_state

    if isinstance(ref, nn.Module):
        ref = ref.state_dict()
    if isinstance(ref, dict):
        bad = [k for k, v in ref.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise LosspathError(f"The {which} state has non-tensor entries: {', '.join(map(str, bad[:5]))}.")
        return {k: v.detach() for k, v in ref.items()}
    if isinstance(ref, tuple) and len(ref) == 2:
        return load_state(_checkpoint_path(ref[0], ref[1]))
    if isinstance(ref, (str, Path)):
        path = Path(ref)
        if not path.is_file() and isinstance(ref, str) and "@" in ref:
            run_dir, step = ref.rsplit("@", 1)
            return load_state(_checkpoint_path(run_dir, step))
        return load_state(path)
    raise LosspathError(
        f"The {which} must be a state dict, a checkpoint path, 'RUN_DIR@STEP' or (run_dir, step), "
        f"not {type(ref).__name__}."
    )


def _checkpoint_path(run_dir, step) -> Path:
    from ..store import checkpoint_path

    if isinstance(step, str) and step.strip().isdigit():
        step = int(step)
    return checkpoint_path(Path(run_dir), step)


def check_endpoints(model: nn.Module, start: State, end: State) -> None:
    """Raise ONE LosspathError listing every key or shape that differs between start, end and the model."""
    reference = model.state_dict()
    problems = []
    for name, state in (("start", start), ("end", end)):
        missing = [k for k in reference if k not in state]
        extra = [k for k in state if k not in reference]
        if missing:
            problems.append(f"{name} lacks {_names(missing)}")
        if extra:
            problems.append(f"{name} has unexpected {_names(extra)}")
    for k, ref in reference.items():
        shapes = {"model": tuple(ref.shape)}
        for name, state in (("start", start), ("end", end)):
            if k in state:
                shapes[name] = tuple(state[k].shape)
        if len(set(shapes.values())) > 1:
            problems.append(f"{k} has shape " + " vs ".join(f"{s} in {n}" for n, s in shapes.items()))
    if problems:
        raise LosspathError("The endpoints do not match the model: " + "; ".join(problems) + ".")


def check_finite(state: State, which: str) -> None:
    """Raise a LosspathError naming the tensors of `state` that hold NaN or ±inf."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise LosspathError(f"The {which} state has non-finite (NaN or inf) values in {_names(bad)}.")


def _names(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def blend(start: torch.Tensor, end: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Stack (1 − c)·start + c·end for every c in the 1-D `coef`; rows with c = 0 or 1 are exact copies."""
    shape = (-1,) + (1,) * start.dim()
    c = coef.to(start.dtype).view(shape)
    out = (1 - c) * start + c * end
    for i, ci in enumerate(coef.tolist()):
        if ci == 0.0:
            out[i] = start
        elif ci == 1.0:
            out[i] = end
    return out


def interpolated_state(start: State, end: State, alpha: float, scheme="all", *, hold: str = "end",
                       batchnorm: str = "interpolate", depths: dict[str, int] | None = None) -> State:
    """The state θ(α) on the line from `start` to `end` under `scheme` (see `schemes.line_rules`).

    `depths` maps module names to layer depth (1 = first layer), needed by the homogeneous scheme; get it
    from `schemes.layer_depths(model, inputs)`. `batchnorm="recompute"` is not a state rule (it needs data):
    use `evaluate_line`.
    """
    if batchnorm == "recompute":
        raise LosspathError("batchnorm='recompute' needs training data; use evaluate_line.")
    rules = line_rules(list(end), end, scheme, hold=hold, batchnorm=batchnorm, depths=depths)
    alphas = torch.tensor([float(alpha)], dtype=torch.float64)
    out = {}
    for k, rule in rules.items():
        if rule.constant is not None:
            out[k] = (start if rule.constant == 0 else end)[k].clone()
        else:
            out[k] = blend(start[k], end[k], rule.coefficients(alphas))[0]
    return out
