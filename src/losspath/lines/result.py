"""What `evaluate_line` returns: the curves along the line and their summary."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LineResult:
    """Loss and error at each α of a line θ(α) between two states.

    alphas        (points,) the α values, in the order given.
    loss          (points,) mean cross-entropy over the examples (float64 sums; inf where it overflowed).
    error         (points,) top-1 error rate.
    class_counts  (points, classes) how many examples are predicted as each class.
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

    def to_frame(self):
        """A pandas DataFrame, one row per α: alpha, loss, error."""
        import pandas as pd

        return pd.DataFrame({"alpha": self.alphas, "loss": self.loss, "error": self.error})

    def summary(self) -> dict:
        """Curve metrics of loss and error (losspath.metrics) and the endpoints' distance."""
        from ..metrics import summarize

        out = {**summarize(self.alphas, self.loss, "loss"), **summarize(self.alphas, self.error, "error")}
        out["distance"] = self.distance
        out["relative_distance"] = self.relative_distance
        return out
