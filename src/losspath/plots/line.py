"""One line's loss (left) and its metrics (error by default, right) against α.

Undefined points (LineResult.undefined: NaN loss and metrics) are drawn as gaps — matplotlib breaks a line at
NaN — and marked with a grey × under the curve, so an interrupted curve is never read as a continuous one.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .common import COLUMN_WIDTH, save_figure, setup_style

LOSS_NAMES = {"cross_entropy": "cross-entropy", "mse": "mean squared error",
              "lm_cross_entropy": "per-token cross-entropy"}


def plot_line(result, path: str | Path, split: str = "test", label: str | None = None) -> list[Path]:
    """Draw a LineResult; α = 0 is the start state and α = 1 the end state. Writes PNG and PDF."""
    setup_style()
    panels = [(result.loss, f"loss ({LOSS_NAMES.get(result.objective, result.objective)})")]
    panels += [(values, name) for name, values in result.metrics.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * COLUMN_WIDTH, 2.4), layout="constrained",
                             squeeze=False)
    undefined = np.asarray(result.alphas)[np.asarray(result.undefined, dtype=bool)]
    for ax, (values, name) in zip(axes[0], panels):
        ax.plot(result.alphas, values, marker="o" if len(result.alphas) <= 25 else None, ms=3, lw=1.2, label=label)
        if undefined.size:
            ax.plot(undefined, np.full(undefined.size, 0.03), ls="none", marker="x", ms=3, color="0.5",
                    transform=ax.get_xaxis_transform(), label="undefined")
        ax.set_xlabel("α  (0: start state, 1: end state)")
        ax.set_ylabel(f"{split.capitalize()} {name}")
    if label or undefined.size:
        axes[0][0].legend(frameon=False)
    return save_figure(fig, path)
