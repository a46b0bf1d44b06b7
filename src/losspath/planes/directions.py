"""Planes θ(a, b) = origin + a·u + b·v through network states, and the directions that span them.

A direction is a state-dict-shaped dict holding a tensor for every floating entry of the state (parameters and
floating buffers, BatchNorm running statistics included); integer buffers (num_batches_tracked) never move and
take the origin's value. Inner products and norms run over all those entries, in float64.

Three ways to choose the plane:
  plane_through(θ1, θ2, θ3)   Garipov et al. 2018 (§5, "Loss surface visualization"): origin θ1,
      u = (θ2 − θ1)/‖θ2 − θ1‖, v = the part of θ3 − θ1 orthogonal to u, normalized (Gram–Schmidt).
      The three points sit at (0, 0), (‖θ2 − θ1‖, 0) and (⟨θ3 − θ1, u⟩, ⟨θ3 − θ1, v⟩).
  trajectory_plane(states)    Goodfellow, Vinyals & Saxe 2015 (ICLR; the 2-D views of the SGD trajectory): the
      init → final direction and the direction in which the trajectory strays furthest from that line. We take
      u = (θ_T − θ_0)/‖θ_T − θ_0‖ and, by default, v = the first principal component of the checkpoints'
      residuals r_t = (θ_t − θ_0) − ⟨θ_t − θ_0, u⟩·u (uncentred: the unit vector maximizing Σ_t ⟨r_t, v⟩², i.e.
      the top right-singular vector of the residual matrix); `second="max_residual"` takes instead the single
      residual of largest norm, normalized. Origin θ_0, so init is (0, 0) and final (‖θ_T − θ_0‖, 0).
  random_plane(state)         Li, Xu, Taylor, Studer & Goldstein 2018 ("Visualizing the loss landscape of
      neural nets", §4, filter normalization): two Gaussian directions, each filter d_{i,j} rescaled to the norm
      of the state's filter, d_{i,j} ← d_{i,j}/‖d_{i,j}‖·‖θ_{i,j}‖ (a filter: one slice along the first axis of a
      tensor of ≥ 2 dimensions). Tensors of ≤ 1 dimension (biases, BatchNorm weights and statistics) are set to
      zero with ignore="biasbn" (their tool's option), else to a copy of the state's values (their default).
      Origin the state; coordinates are in units of the filter-normalized directions.

`project(plane, states)` gives every state's coordinates (a, b) (least squares, so u and v need not be
orthonormal) and its distance from the plane.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import LosspathError
from ..keys import State
from ..lines.states import resolve_state


LABELS = ("θ1", "θ2", "θ3")


@dataclass
class Plane:
    """origin + a·u + b·v. `points`: named states and their (a, b) coordinates (e.g. init and final)."""

    origin: State
    u: State
    v: State
    points: dict[str, tuple[float, float]] = field(default_factory=dict)
    kind: str = "custom"


def floating_keys(state: State) -> list[str]:
    return [k for k, t in state.items() if t.is_floating_point()]


def _check_like(reference: State, other: State, what: str) -> None:
    keys = floating_keys(reference)
    missing = [k for k in keys if k not in other]
    bad = [k for k in keys if k in other and tuple(other[k].shape) != tuple(reference[k].shape)]
    if missing or bad:
        names = ", ".join((missing + bad)[:5])
        raise LosspathError(f"{what} does not match the other states (missing or differently shaped: {names}).")


def difference(a: State, b: State) -> State:
    """a − b over the floating entries, in float64."""
    return {k: a[k].double() - b[k].double() for k in floating_keys(a)}


def dot(x: State, y: State) -> float:
    return float(sum(torch.sum(x[k].double() * y[k].double()) for k in x))


def norm(x: State) -> float:
    return dot(x, x) ** 0.5


def combine(terms: list[tuple[float, State]]) -> State:
    """Σ c·x over the keys of the first term, in float64."""
    keys = list(terms[0][1])
    return {k: sum(c * x[k].double() for c, x in terms) for k in keys}


def _unit(x: State, what: str) -> State:
    length = norm(x)
    if not np.isfinite(length) or length == 0.0:
        raise LosspathError(f"{what} has zero (or non-finite) length, so it spans no direction.")
    return {k: t / length for k, t in x.items()}


def _resolve(ref, which: str) -> State:
    state = resolve_state(ref, which)
    if not floating_keys(state):
        raise LosspathError(f"The {which} state has no floating-point entries.")
    return state


def plane_through(first, second, third) -> Plane:
    """The plane through three states (Garipov et al. 2018): origin `first`, orthonormal u toward `second` and
    v toward the part of `third` off that line. States: dicts, checkpoint paths or "RUN_DIR@STEP"."""
    states = [_resolve(ref, name) for ref, name in zip((first, second, third), ("first", "second", "third"))]
    for state, name in zip(states[1:], ("second", "third")):
        _check_like(states[0], state, f"The {name} state")
    d2, d3 = difference(states[1], states[0]), difference(states[2], states[0])
    u = _unit(d2, "The second state minus the first")
    along = dot(d3, u)
    v = _unit(combine([(1.0, d3), (-along, u)]), "The third state's offset off the line through the first two")
    points = {LABELS[0]: (0.0, 0.0), LABELS[1]: (norm(d2), 0.0), LABELS[2]: (along, dot(d3, v))}
    return Plane(states[0], u, v, points, kind="three points")


def trajectory_plane(states: list, *, second: str = "pca") -> Plane:
    """Goodfellow et al. 2015's plane of a training trajectory: u from the first state (init) to the last
    (final), v the first principal component of the other states' residuals from that line (second="pca") or
    their largest residual (second="max_residual"); both orthonormal. `states` in training order."""
    if second not in ("pca", "max_residual"):
        raise LosspathError(f"second must be 'pca' or 'max_residual', not {second!r}.")
    if len(states) < 3:
        raise LosspathError(f"A trajectory plane needs at least 3 checkpoints (init, one between, final); got "
                            f"{len(states)}.")
    resolved = [_resolve(ref, f"checkpoint {i}") for i, ref in enumerate(states)]
    for i, state in enumerate(resolved[1:], 1):
        _check_like(resolved[0], state, f"Checkpoint {i}")
    origin = resolved[0]
    span = difference(resolved[-1], origin)
    u = _unit(span, "The final state minus the initial one")
    residuals = []
    for state in resolved[1:-1]:
        d = difference(state, origin)
        residuals.append(combine([(1.0, d), (-dot(d, u), u)]))
    lengths = [norm(r) for r in residuals]
    if max(lengths) <= 1e-6 * norm(span):  # rounding of states on the line, not a second direction
        raise LosspathError("Every checkpoint lies on the line from init to final; the trajectory spans no plane.")
    if second == "max_residual":
        v = _unit(residuals[int(np.argmax(lengths))], "The largest residual")
    else:
        gram = np.array([[dot(r, s) for s in residuals] for r in residuals])
        values, vectors = np.linalg.eigh(gram)  # R Rᵀ = W Λ Wᵀ; top right-singular vector of R is Rᵀw/‖Rᵀw‖
        w = vectors[:, -1]
        v = _unit(combine([(float(c), r) for c, r in zip(w, residuals)]), "The residuals' principal component")
    plane = Plane(origin, u, v, kind=f"trajectory ({second})")
    coords = project(plane, resolved)[0]
    plane.points = {"init": tuple(coords[0]), "final": tuple(coords[-1])}
    return plane


def random_plane(state, *, seed: int = 0, ignore: str | None = "biasbn") -> Plane:
    """Two filter-normalized Gaussian directions around `state` (Li et al. 2018); `ignore="biasbn"` zeroes
    biases and BatchNorm entries (every tensor of ≤ 1 dimension), None copies the state's values there."""
    if ignore not in ("biasbn", None):
        raise LosspathError(f"ignore must be 'biasbn' or None, not {ignore!r}.")
    origin = _resolve(state, "centre")
    generator = torch.Generator().manual_seed(int(seed))
    u, v = ({k: filter_normalized(origin[k], generator, ignore) for k in floating_keys(origin)} for _ in range(2))
    return Plane(origin, u, v, {"centre": (0.0, 0.0)}, kind=f"random, filter-normalized (seed {seed})")


def filter_normalized(weight: torch.Tensor, generator: torch.Generator, ignore: str | None) -> torch.Tensor:
    """One tensor of a Li et al. direction: Gaussian, each filter (slice along axis 0) scaled to the norm of the
    weight's filter; tensors of ≤ 1 dimension zero (ignore="biasbn") or a copy of the weight."""
    w = weight.double()
    if w.dim() <= 1:
        return torch.zeros_like(w) if ignore == "biasbn" else w.clone()
    d = torch.randn(w.shape, generator=generator, dtype=torch.float64)
    d_norms = d.reshape(len(d), -1).norm(dim=1)
    w_norms = w.reshape(len(w), -1).norm(dim=1)
    scale = w_norms / (d_norms + 1e-10)  # Li et al.'s 1e-10 guard
    return d * scale.view(-1, *([1] * (w.dim() - 1)))


def project(plane: Plane, states: list) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates (n, 2), distances (n,)): each state's least-squares (a, b) with θ ≈ origin + a·u + b·v, and
    ‖θ − (origin + a·u + b·v)‖, over the floating entries."""
    uu, uv, vv = dot(plane.u, plane.u), dot(plane.u, plane.v), dot(plane.v, plane.v)
    gram = np.array([[uu, uv], [uv, vv]])
    if abs(np.linalg.det(gram)) <= 1e-12 * uu * vv:
        raise LosspathError("The plane's directions u and v are parallel; they span no plane.")
    coords, distances = [], []
    for i, ref in enumerate(states):
        state = _resolve(ref, f"state {i}")
        _check_like(plane.origin, state, f"State {i}")
        d = difference(state, plane.origin)
        ab = np.linalg.solve(gram, [dot(d, plane.u), dot(d, plane.v)])
        coords.append(ab)
        distances.append(norm(combine([(1.0, d), (-ab[0], plane.u), (-ab[1], plane.v)])))
    return np.array(coords).reshape(-1, 2), np.array(distances)


def state_at(plane: Plane, a: float, b: float) -> State:
    """origin + a·u + b·v in the origin's dtypes (integer buffers: the origin's), computed in float64."""
    out = {}
    for k, t in plane.origin.items():
        if t.is_floating_point():
            out[k] = (t.double() + a * plane.u[k].double() + b * plane.v[k].double()).to(t.dtype)
        else:
            out[k] = t.clone()
    return out
