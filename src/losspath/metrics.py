"""Summaries of a curve v(α) along a line, and distances between the endpoint states.

Pure functions on numpy arrays (values in α order). Infinite values (a loss that overflowed) are allowed:
an increase to inf is inf, and inf − inf counts as no change. NaN values mark undefined points of a line
(LineResult.undefined: not a valid network there) and are left out: every summary is that of the curve through
the defined points (its first and last defined points are its ends); with no defined point, or no finite one (a
loss that is inf at every α says nothing about its shape), it is NaN (and not monotone). LineResult.summary() reports how many points were left out.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .keys import is_buffer


def _values(values) -> np.ndarray:
    """The defined (non-NaN) values, in order; none when no value is finite."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("A curve needs at least one value.")
    return v[~np.isnan(v)] if np.isfinite(v).any() else v[:0]


def _curve(alphas, values) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, values) at the defined (non-NaN) values, in order."""
    a, v = np.asarray(alphas, dtype=np.float64).reshape(-1), np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size != v.size:
        raise ValueError(f"{a.size} alphas but {v.size} values.")
    defined = ~np.isnan(v) if np.isfinite(v).any() else np.zeros(v.size, dtype=bool)
    return a[defined], _values(v)


def _rise(v: np.ndarray, base) -> np.ndarray:
    """v − base, with equal values (inf and inf included) giving exactly 0 instead of NaN."""
    with np.errstate(invalid="ignore"):
        return np.where(v == base, 0.0, v - base)


def max_increase(values) -> float:
    """Frankle 2020, Fig. 3: the maximum increase of v along the line over its value at the start,
    max_α v(α) − v(α_0) with α_0 the first point (α = 0 on the usual grid); never below 0."""
    v = _values(values)
    if v.size == 0:
        return math.nan
    return float(np.maximum(0.0, np.max(_rise(v, v[0]))))


def barrier(alphas, values) -> float:
    """The chord barrier (Entezari, Sedghi, Saukh & Neyshabur 2022, Eq. 1): the largest height of v above the
    chord between its endpoints, max_α v(α) − [(1 − t)·v(α_0) + t·v(α_last)], t = (α − α_0)/(α_last − α_0);
    never below 0. Frankle et al. 2020 (linear mode connectivity) measure from the endpoints' mean instead:
    see `barrier_height`."""
    a, v = _curve(alphas, values)
    if v.size == 0:
        return math.nan
    if v.size == 1 or a[-1] == a[0]:
        return 0.0
    t = (a - a[0]) / (a[-1] - a[0])
    with np.errstate(invalid="ignore"):
        chord = np.where(t == 0, v[0], np.where(t == 1, v[-1], (1 - t) * v[0] + t * v[-1]))
    return float(np.maximum(0.0, np.max(_rise(v, chord))))


def barrier_height(values) -> float:
    """The error barrier height of Frankle, Dziugaite, Roy & Carbin 2020 ("Linear Mode Connectivity and the
    Lottery Ticket Hypothesis", §2; Ainsworth et al. 2023 use it for the loss): the largest value along the line
    minus the mean of the two endpoint values, max_α v(α) − ½·[v(α_0) + v(α_last)]; never below 0. Their
    *instability* of a network is this height for the test error between two copies trained with different
    SGD noise; they call the copies linearly connected (the network stable) when it is ≈ 0 (below 2% in their
    experiments). Equal to the chord barrier when the endpoint values are equal; otherwise either can be larger."""
    v = _values(values)
    if v.size == 0:
        return math.nan
    with np.errstate(invalid="ignore"):
        mean = 0.5 * v[0] + 0.5 * v[-1]
    return float(np.maximum(0.0, _rise(np.max(v), mean)))


def lucas_delta(values) -> float:
    """Lucas et al. 2021 ("Analyzing monotonic linear interpolation"), Δ: the height of the largest bump,
    max_j [v(j) − min_{i≤j} v(i)], the largest rise above the level where the rise began; 0 if monotone."""
    v = _values(values)
    if v.size == 0:
        return math.nan
    return float(np.maximum(0.0, np.max(_rise(v, np.minimum.accumulate(v)))))


def is_monotone(values, tol: float = 0.0) -> bool:
    """Lucas et al. 2021, the MLI property: v is non-increasing along the line, every step v(j+1) − v(j) ≤ tol."""
    v = _values(values)
    return v.size > 0 and bool(np.all(_rise(v[1:], v[:-1]) <= tol))


def plateau_end(alphas, values, fraction: float = 0.1) -> float:
    """The length of a plateau (the phenomenon Wang et al. 2023 explain): the first α at which v has fallen by
    `fraction` of its total drop, v(α) ≤ v(α_0) − fraction·[v(α_0) − v(α_last)]. NaN if v does not drop
    (or the drop is not finite). The 10% rule is our choice, not the paper's: its plateau definition could not
    be recovered. Measured from α_0 (the init itself); see `plateau_end_from` for a plateau at a fixed level."""
    a, v = _curve(alphas, values)
    if v.size == 0:
        return math.nan
    drop = v[0] - v[-1]
    if not np.isfinite(drop) or drop <= 0:
        return math.nan
    hit = np.nonzero(v <= v[0] - fraction * drop)[0]
    return float(a[hit[0]])


def _parameter_keys(start: dict, end: dict, parameter_names: Iterable[str] | None) -> list[str]:
    if parameter_names is not None:
        return list(parameter_names)
    return [k for k in start if k in end and not is_buffer(k)]


def distance(start: dict, end: dict, parameter_names: Iterable[str] | None = None) -> float:
    """Euclidean distance ‖θ_end − θ_start‖ over parameters (Frankle 2020 measures how far training moves).

    Buffers are excluded: by default, keys whose last component is running_mean, running_var or
    num_batches_tracked; pass `parameter_names` (e.g. `[n for n, _ in model.named_parameters()]`) to be exact."""
    total = 0.0
    for k in _parameter_keys(start, end, parameter_names):
        d = np.asarray(_numpy(end[k]), dtype=np.float64) - np.asarray(_numpy(start[k]), dtype=np.float64)
        total += float(np.sum(d * d))
    return math.sqrt(total)


def relative_distance(start: dict, end: dict, parameter_names: Iterable[str] | None = None) -> float:
    """‖θ_end − θ_start‖ / ‖θ_start‖ over parameters (buffers excluded as in `distance`); inf if θ_start = 0."""
    keys = _parameter_keys(start, end, parameter_names)
    norm = math.sqrt(sum(float(np.sum(np.asarray(_numpy(start[k]), dtype=np.float64) ** 2)) for k in keys))
    d = distance(start, end, keys)
    if norm == 0:
        return 0.0 if d == 0 else math.inf
    return d / norm


def _numpy(x):
    return x.detach().cpu().double().numpy() if hasattr(x, "detach") else x


def summarize(alphas, values, prefix: str) -> dict[str, float | bool]:
    """All curve metrics of one quantity, keys prefixed (e.g. "loss_max_increase")."""
    return {
        f"{prefix}_max_increase": max_increase(values),
        f"{prefix}_barrier": barrier(alphas, values),
        f"{prefix}_lucas_delta": lucas_delta(values),
        f"{prefix}_monotone": is_monotone(values),
        f"{prefix}_plateau_end": plateau_end(alphas, values),
    }


# ------------------------------------------------------------------ the MLI plateau's regime (Wang et al. 2023)
# The paper's claim is about nets whose initial outputs are small next to what training puts into the biases
# (its introduction: with a small init, a bias-free homogeneous net predicts the same labels along the whole
# line, so no error plateau). These measures place a line inside or outside that regime.

INIT_DOMINATED_LOSS = 1.5  # a line starting above 1.5 · log K nats is dominated by its random init
# init-dominance ratio bounds: below REGIME_INSIDE the paper's regime, from REGIME_OUTSIDE on init-dominated
REGIME_INSIDE, REGIME_OUTSIDE = 0.1, 1.0


def regime_of(ratio: float) -> str:
    """"inside" the paper's regime (ratio < REGIME_INSIDE), "init-dominated" (≥ REGIME_OUTSIDE), "between", or
    "unknown" for a ratio that is not finite."""
    if not math.isfinite(ratio):
        return "unknown"
    return "inside" if ratio < REGIME_INSIDE else "init-dominated" if ratio >= REGIME_OUTSIDE else "between"


def init_dominance(initial_logits, final_output_bias=None, final_logits=None) -> dict[str, float]:
    """How large the init's outputs are next to what training put into the output layer.

    ratio_bias    std of the initial logits (all examples × classes) ÷ (max − min) over classes of the final
                  output bias; NaN without an output bias (bias-free net).
    ratio_logits  the same std ÷ (max − min) over classes of the final logits' class means (each class's
                  logit averaged over the examples): the offsets every part of the net (hidden biases too)
                  puts between classes.
    Small (≪ 1): the trained offsets dominate the start of the line, the paper's regime; ≳ 1: the random init
    decides it."""
    std = float(np.std(np.asarray(_numpy(initial_logits), dtype=np.float64)))

    def spread(v):
        v = np.asarray(_numpy(v), dtype=np.float64)
        return float(v.max() - v.min())

    def ratio(s):
        return std / s if s > 0 else (math.inf if std > 0 else math.nan)

    bias = math.nan if final_output_bias is None else ratio(spread(final_output_bias))
    logits = math.nan
    if final_logits is not None:
        logits = ratio(spread(np.asarray(_numpy(final_logits), dtype=np.float64).mean(axis=0)))
    return dict(initial_logit_std=std, ratio_bias=bias, ratio_logits=logits)


def plateau_end_from(alphas, values, level: float, fraction: float = 0.1) -> float:
    """The end of a plateau at `level` (chance error 1 − 1/K, or log K for the loss), measured from the first
    α > 0: the first α > 0 where v ≤ level − fraction·(level − v_end), v_end the value at the last point.

    Unlike `plateau_end`, the random init (α = 0) does not set the reference, so a start far above (loss of a
    large init) or below (error of a lucky init) the level does not end or stretch the plateau. Returns the
    first α > 0 itself when v is below that threshold at once (no plateau); NaN when v_end is not below
    `level` (nothing falls) or no point qualifies."""
    a, v = _curve(alphas, values)
    keep = a > 0
    a, v = a[keep], v[keep]
    if v.size == 0 or not np.isfinite(v[-1]) or v[-1] >= level:
        return math.nan
    hit = np.nonzero(v <= level - fraction * (level - v[-1]))[0]
    return float(a[hit[0]]) if hit.size else math.nan


def regime_plateaus(alphas, loss, error, num_classes: int, fraction: float = 0.1) -> dict:
    """Error plateau against chance (1 − 1/K) and loss plateau against log K, both from the first α > 0,
    and whether the line is init-dominated (its start loss above INIT_DOMINATED_LOSS · log K)."""
    log_k, chance = math.log(num_classes), 1 - 1 / num_classes
    start = _values(loss)
    return dict(error_plateau_end_chance=plateau_end_from(alphas, error, chance, fraction),
                loss_plateau_end_logk=plateau_end_from(alphas, loss, log_k, fraction),
                start_loss=float(start[0]) if start.size else math.nan,
                init_dominated_loss=bool(start.size and start[0] > INIT_DOMINATED_LOSS * log_k))


def common_class_share(alphas, class_counts, end: float) -> tuple[int, float]:
    """On the plateau (0 < α < end): the class predicted most often over all its points, and the mean share of
    examples predicted as that one class there — whatever sets it (output or hidden biases, or the init).
    (-1, NaN) when the plateau holds no grid point."""
    a = np.asarray(alphas, dtype=np.float64)
    counts = np.asarray(class_counts, dtype=np.float64)
    on = (a > 0) & (a < end) if np.isfinite(end) else np.zeros(a.size, bool)
    if not on.any():
        return -1, math.nan
    top = int(np.argmax(counts[on].sum(axis=0)))
    shares = counts[on, top] / counts[on].sum(axis=1)
    return top, float(np.mean(shares))


def rank_correlation(x, y) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 points or no spread."""
    import pandas as pd  # its rank() averages ties

    frame = pd.DataFrame(dict(x=list(x), y=list(y))).dropna()
    if len(frame) < 3 or frame.x.nunique() < 2 or frame.y.nunique() < 2:
        return math.nan
    return float(frame.x.rank().corr(frame.y.rank()))
