"""One line's loss (left) and error (right) against α."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .common import COLUMN_WIDTH, save_figure, setup_style


def plot_line(result, path: str | Path, split: str = "test", label: str | None = None) -> list[Path]:
    """Draw a LineResult; α = 0 is the start state and α = 1 the end state. Writes PNG and PDF."""
    setup_style()
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.4), layout="constrained")
    for ax, values, name in ((axes[0], result.loss, "loss (cross-entropy)"), (axes[1], result.error, "error")):
        ax.plot(result.alphas, values, marker="o" if len(result.alphas) <= 25 else None, ms=3, lw=1.2, label=label)
        ax.set_xlabel("α  (0: start state, 1: end state)")
        ax.set_ylabel(f"{split.capitalize()} {name}")
    if label:
        axes[0].legend(frameon=False)
    return save_figure(fig, path)
