"""A plane's loss and error as filled contours, with a training trajectory projected onto it.

Loss levels are log-spaced (the loss spans orders of magnitude between init and a trained net), error levels
linear in [0, 1]. Undefined points (PlaneResult.undefined) are left white and marked with a grey ×, never
coloured as numbers. The path: the checkpoints' coordinates (planes.project) joined in training order, each
marked; init and final (or the plane's named points) labelled.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors, ticker

from .common import COLUMN_WIDTH, PALETTE, save_figure, setup_style

LOSS_LEVELS = 24


def plot_plane(result, path: str | Path, *, path_coords=None, labels: dict | None = None, split: str = "test",
               title: str | None = None, distances=None) -> list[Path]:
    """Draw a PlaneResult: loss (log levels) and, if the objective has one, error side by side. `path_coords`:
    (n, 2) coordinates of a trajectory (drawn in order, every point marked); `labels`: {name: (a, b)} points to
    label (default: result.points). `distances`: the trajectory's distances off the plane, noted in the
    title. Writes PNG and PDF."""
    setup_style()
    labels = dict(result.points) if labels is None else labels
    panels = [("loss", result.loss)]
    if np.isfinite(result.error).any():
        panels.append(("error", result.error))
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * COLUMN_WIDTH * 1.05, 2.9),
                             layout="constrained", squeeze=False)
    b_grid, a_grid = np.meshgrid(result.b_values, result.a_values)
    for ax, (name, values) in zip(axes[0], panels):
        shown = np.ma.masked_invalid(np.where(result.undefined, np.nan, values))
        if name == "loss":
            finite = shown.compressed()
            finite = finite[finite > 0]
            low, high = (finite.min(), finite.max()) if finite.size else (1e-3, 1.0)
            high = max(high, low * 1.01)
            levels = np.geomspace(low, high, LOSS_LEVELS)
            filled = ax.contourf(a_grid, b_grid, np.ma.masked_less_equal(shown, 0), levels=levels,
                                 norm=colors.LogNorm(low, high), cmap="viridis", extend="both")
            bar = fig.colorbar(filled, ax=ax, shrink=0.9, ticks=levels[::4])
            bar.ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.3g"))
            bar.ax.yaxis.set_minor_locator(ticker.NullLocator())
        else:
            filled = ax.contourf(a_grid, b_grid, shown, levels=np.linspace(0, 1, 21), cmap="magma_r")
            bar = fig.colorbar(filled, ax=ax, shrink=0.9)
        bar.set_label(f"{split} {name}")
        if result.undefined.any():
            ax.plot(a_grid[result.undefined], b_grid[result.undefined], ls="none", marker="x", ms=2, color="0.5",
                    label="undefined")
        if path_coords is not None and len(path_coords):
            coords = np.asarray(path_coords)
            ax.plot(coords[:, 0], coords[:, 1], color="white", lw=2.2, zorder=3)
            ax.plot(coords[:, 0], coords[:, 1], color=PALETTE[1], lw=1.0, marker="o", ms=2.2, zorder=4,
                    label="training path (checkpoints)")
        for text, (a, b) in labels.items():
            ax.plot([a], [b], marker="*", ms=7, color=PALETTE[4], mec="black", mew=0.5, zorder=5, ls="none")
            ax.annotate(text, (a, b), textcoords="offset points", xytext=(4, 4), fontsize=7, zorder=6,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
        ax.set_xlabel("a  (along u)")
        ax.set_ylabel("b  (along v)")
        ax.set_xlim(result.a_values.min(), result.a_values.max())
        ax.set_ylim(result.b_values.min(), result.b_values.max())
    if path_coords is not None or result.undefined.any():
        axes[0][0].legend(frameon=False, loc="lower left", fontsize=6)
    heading = title or ""
    if distances is not None and len(distances):
        heading += ("\n" if heading else "") + f"checkpoints lie within {np.max(distances):.3g} of the plane"
    if heading:
        fig.suptitle(heading, fontsize=8)
    return save_figure(fig, path)


def plot_sharpness(frame, path: str | Path, *, x: str = "alpha", title: str | None = None,
                   labels: list | None = None) -> list[Path]:
    """Sharpness (top Hessian eigenvalue, log scale) against α or step, one curve per frame (a list of frames
    with `labels`); NaN points are gaps. Writes PNG and PDF."""
    setup_style()
    frames = frame if isinstance(frame, list) else [frame]
    labels = labels or [None] * len(frames)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4), layout="constrained")
    for f, label in zip(frames, labels):
        ax.plot(f[x], f["sharpness"], marker="o", ms=3, lw=1.2, label=label)
    positive = [v for f in frames for v in f["sharpness"] if np.isfinite(v) and v > 0]
    if positive and min(positive) > 0 and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("α  (0: init, 1: final)" if x == "alpha" else x)
    ax.set_ylabel("sharpness λ_max(H)")
    if any(labels):
        ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
