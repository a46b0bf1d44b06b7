"""`evaluate_plane`: loss and metrics at θ(a, b) = origin + a·u + b·v over a grid, on the line engine.

A plane is a stack of lines: row a of the grid is the line from θ(a, 0) = origin + a·u to θ(a, 1) =
origin + a·u + v, and its point (a, b) is that line's α = b, since (1 − b)·θ(a, 0) + b·θ(a, 1) = origin + a·u +
b·v. Each row runs through `lines.evaluate_line` with α = the b values, so everything the engine does for a line
holds for a plane: the grid's states are stacked and chunked to memory, the first layer runs per endpoint, not
per point (W(a, b)x = (W0 + a·U)x + b·(Vx): the first-layer identity, applied per row), the ReLU-pair sweep,
BatchNorm statistics recomputed per point, objectives and metrics, the vmap fallback and the undefined flags.
The row endpoints are formed in float64 and rounded once, so a point differs from origin + a·u + b·v by rounding
only. Extrapolation (any real a, b) is allowed.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from ..errors import LosspathError
from ..keys import is_bn_stat
from ..lines.engine import evaluate_line
from ..lines.stacked import fill_tied
from ..lines.states import check_finite, resolve_state
from .directions import Plane, floating_keys
from .result import PlaneResult

BATCHNORM_MODES = ("interpolate", "recompute", "origin")
LINE_ONLY = ("points", "alphas", "scheme", "hold", "progress", "batchnorm")


def evaluate_plane(model: nn.Module, origin, u=None, v=None, data=None, *, grid, batchnorm: str = "interpolate",
                   train_data=None, progress: bool = True, **line_options) -> PlaneResult:
    """Evaluate the loss and metrics (default: mean cross-entropy and top-1 error) at origin + a·u + b·v for
    every a in grid[0] and b in grid[1].

    model      any nn.Module with the architecture (its weights are not used).
    origin     a state dict, checkpoint path or "RUN_DIR@STEP"; or a `Plane` (planes.directions), whose origin,
               u, v and named points are used (then leave u and v out).
    u, v       state-dict-shaped directions with a tensor for every floating entry of the origin (BatchNorm
               running statistics included); integer buffers take the origin's value.
    grid       (a_values, b_values), two sequences of finite reals.
    batchnorm  "interpolate": running statistics move with (a, b) like every floating entry; "recompute":
               re-estimated at every point from `train_data` (lines.batchnorm); "origin": held at the origin's.
    line_options  passed to `evaluate_line` for every row: loss, metrics, output, target_key, batch_size,
               bn_batches, device, max_memory, first_layer_shortcut, relu_shortcut, vectorize.

    Points whose state has a negative BatchNorm variance or whose output is NaN are undefined: NaN loss and
    metrics and a reason (lines.undefined).
    """
    points = {}
    if isinstance(origin, Plane):
        if v is None and data is None:  # evaluate_plane(model, plane, data, grid=...)
            data, u = u, None
        if u is not None or v is not None:
            raise LosspathError("Pass either a Plane or origin, u and v, not both.")
        origin, u, v, points = origin.origin, origin.u, origin.v, dict(origin.points)
    if u is None or v is None or data is None:
        raise LosspathError("evaluate_plane needs origin, u, v and data.")
    bad = sorted(set(line_options) & set(LINE_ONLY))
    if bad:
        raise LosspathError(f"evaluate_plane does not take {', '.join(bad)} (a plane moves every floating entry; "
                            "the grid gives the points).")
    if batchnorm not in BATCHNORM_MODES:
        raise LosspathError(f"batchnorm must be one of {', '.join(BATCHNORM_MODES)}, not {batchnorm!r}.")
    a_values, b_values = _axis(grid, 0, "a"), _axis(grid, 1, "b")
    origin = fill_tied(model, resolve_state(origin, "origin"))
    check_finite(origin, "origin")
    u, v = (_direction(model, origin, d, name) for d, name in ((u, "u"), (v, "v")))
    line_bn = {"interpolate": "interpolate", "recompute": "recompute", "origin": "end"}[batchnorm]
    if not any(is_bn_stat(k) for k in origin):  # no statistics to recompute or hold
        line_bn = "interpolate"

    shape = (len(a_values), len(b_values))
    loss = np.full(shape, np.nan)
    metrics: dict[str, np.ndarray] = {}
    undefined = np.zeros(shape, dtype=bool)
    reasons = []
    bar = _progress(shape[0] * shape[1], progress)
    first = None
    for i, a in enumerate(a_values):
        start, end = _row(origin, u, v, float(a), hold_bn=batchnorm == "origin")
        row = evaluate_line(model, start, end, data, alphas=b_values, batchnorm=line_bn, train_data=train_data,
                            progress=False, **line_options)
        first = first or row
        loss[i] = row.loss
        for name, values in row.metrics.items():
            metrics.setdefault(name, np.full(shape, np.nan))[i] = values
        undefined[i] = row.undefined
        reasons.append(list(row.undefined_reason))
        bar.update(shape[1])
    bar.close()
    error = metrics["error"] if "error" in metrics else np.full(shape, np.nan)
    info = {"rows": shape[0], "row_plan": first.info, "path": first.info.get("path")}
    return PlaneResult(a_values=a_values, b_values=b_values, loss=loss, error=error, metrics=metrics,
                       undefined=undefined, undefined_reason=reasons, batchnorm=batchnorm,
                       objective=first.objective, num_examples=first.num_examples, points=points, info=info)


def _axis(grid, index: int, name: str) -> np.ndarray:
    try:
        values = np.asarray(grid[index], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, IndexError):
        raise LosspathError("grid must be (a_values, b_values), two sequences of numbers.") from None
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise LosspathError(f"The grid's {name} values must be a non-empty list of finite numbers.")
    return values


def _direction(model: nn.Module, origin, ref, name: str) -> dict:
    direction = resolve_state(ref, f"direction {name}")
    missing = [k for k in floating_keys(origin) if k not in direction]
    if missing:
        raise LosspathError(f"Direction {name} lacks floating entries of the origin: "
                            f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}.")
    bad = [k for k in floating_keys(origin) if tuple(direction[k].shape) != tuple(origin[k].shape)]
    if bad:
        raise LosspathError(f"Direction {name} has shapes unlike the origin's at {', '.join(bad[:5])}.")
    out = {k: direction[k].double() for k in floating_keys(origin)}
    check_finite(out, f"direction {name}")
    return out


def _row(origin, u, v, a: float, hold_bn: bool):
    """The row's endpoints θ(a, 0) and θ(a, 1), each rounded once from float64; with `hold_bn` their BatchNorm
    statistics are the origin's (the line engine then holds them, batchnorm="end")."""
    start, end = {}, {}
    for k, t in origin.items():
        if not t.is_floating_point() or (hold_bn and is_bn_stat(k)):
            start[k], end[k] = t, t
            continue
        at_a = t.double() + a * u[k]
        start[k], end[k] = at_a.to(t.dtype), (at_a + v[k]).to(t.dtype)
    return start, end


def _progress(total: int, progress: bool):
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc="plane", unit="pt", disable=not progress or not sys.stderr.isatty())

