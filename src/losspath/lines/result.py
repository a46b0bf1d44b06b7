"""What `evaluate_line` returns: the curves along the line and their summary."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LineResult:
    """Loss and metrics at each α of a line θ(α) between two states.

    alphas        (points,) the α values, in the order given.
    loss          (points,) mean loss over the data set (`objective`: cross-entropy by default; float64 sums;
                  inf where the output overflowed; NaN where the point is undefined).
    error         (points,) top-1 error rate (next-token error for lm_cross_entropy; NaN for an objective
                  without an `error` metric, and where the point is undefined).
    class_counts  (points, classes) how many examples are predicted as each class (cross-entropy only; zero
                  where the point is undefined).
    metrics       {name: (points,)} every named metric, `error` included (lines.objectives).
    undefined     (points,) bool: θ(α) is not a valid network or its output is NaN (lines.undefined); the loss
                  and metrics there are NaN, never numbers.
    undefined_reason  per point, "" or why it is undefined.
    info          how it ran: `path` ("vectorized" or "one alpha at a time"), `fallback` (why vmap was not
                  used, or None), chunk sizes and the shortcuts used.
    """

    alphas: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    class_counts: np.ndarray
    num_examples: int = 0
    scheme: str = "all"
    batchnorm: str = "interpolate"
    distance: float = float("nan")
    relative_distance: float = float("nan")
    info: dict = field(default_factory=dict)
    metrics: dict | None = None
    undefined: np.ndarray | None = None
    undefined_reason: list | None = None
    objective: str = "cross_entropy"

    def __post_init__(self):
        points = len(self.alphas)
        if self.metrics is None:  # a classifier's result built by hand or read from an older file
            self.metrics = {"error": self.error}
        if self.undefined is None:  # NaN loss marks an undefined point (a built-in loss is never NaN otherwise)
            self.undefined = np.isnan(np.asarray(self.loss, dtype=np.float64))
        self.undefined = np.asarray(self.undefined, dtype=bool).reshape(points)
        if self.undefined_reason is None:
            self.undefined_reason = ["undefined (reason not recorded)" if u else "" for u in self.undefined]

    def to_frame(self):
        """A pandas DataFrame, one row per α: alpha, loss, every metric (error first), undefined,
        undefined_reason."""
        import pandas as pd

        columns = {"alpha": self.alphas, "loss": self.loss, **self.metrics}
        return pd.DataFrame({**columns, "undefined": self.undefined, "undefined_reason": self.undefined_reason})

    def summary(self) -> dict:
        """Curve metrics of the loss and every metric (losspath.metrics; undefined points are left out), how
        many points are undefined, and the endpoints' distance."""
        from ..metrics import summarize

        out = summarize(self.alphas, self.loss, "loss")
        for name, values in self.metrics.items():
            out |= summarize(self.alphas, values, name)
        out["undefined_points"] = int(np.sum(self.undefined))
        out["distance"] = self.distance
        out["relative_distance"] = self.relative_distance
        return out
