"""What `evaluate_plane` returns: loss and metrics over a grid of a plane."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PlaneResult:
    """Loss and metrics at θ(a, b) = origin + a·u + b·v for every (a, b) of the grid.

    a_values, b_values  the grid's axes; every array below has shape (len(a_values), len(b_values)), indexed
                        [i, j] for (a_values[i], b_values[j]).
    loss, error         mean loss (the objective's; inf where the output overflowed) and top-1 error; NaN where
                        the point is undefined.
    metrics             {name: array} every metric of the objective, `error` included.
    undefined           bool array: the point is not a valid network or its output is NaN (lines.undefined).
    undefined_reason    nested list of "" or why.
    points              named states on the plane and their (a, b) (from the Plane helpers), for figures.
    info                how it ran (rows evaluated as lines; the first row's engine plan).
    """

    a_values: np.ndarray
    b_values: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    metrics: dict
    undefined: np.ndarray
    undefined_reason: list
    batchnorm: str = "interpolate"
    objective: str = "cross_entropy"
    num_examples: int = 0
    points: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def to_frame(self):
        """A pandas DataFrame, one row per grid point: a, b, loss, every metric (error first), undefined,
        undefined_reason."""
        import pandas as pd

        a, b = np.meshgrid(self.a_values, self.b_values, indexing="ij")
        columns = {"a": a.ravel(), "b": b.ravel(), "loss": self.loss.ravel()}
        columns |= {name: values.ravel() for name, values in self.metrics.items()}
        reasons = [r for row in self.undefined_reason for r in row]
        return pd.DataFrame({**columns, "undefined": self.undefined.ravel(), "undefined_reason": reasons})
