"""Goodfellow et al. 2015's two views, drawn from the study's tables: the trajectory plane of each setting
(plane.csv with path.csv, as planes' contour figure) and the init → final line of every setting (line.csv;
loss left on a log scale, error right)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...planes import PlaneResult
from ...plots.common import COLUMN_WIDTH, PALETTE, save_figure, setup_style
from ...plots.plane import plot_plane


def plane_result(plane: pd.DataFrame, path: pd.DataFrame) -> PlaneResult:
    """One setting's rows of plane.csv (a outer, b inner, as PlaneResult.to_frame writes them) as a result."""
    a_values, b_values = np.unique(plane.a.to_numpy()), np.unique(plane.b.to_numpy())
    shape = (len(a_values), len(b_values))

    def grid(column):
        return plane[column].to_numpy().reshape(shape)

    reasons = plane.undefined_reason.fillna("").astype(str).to_numpy().reshape(shape).tolist()
    points = {"init": (path.a.iloc[0], path.b.iloc[0]), "final": (path.a.iloc[-1], path.b.iloc[-1])}
    return PlaneResult(a_values=a_values, b_values=b_values, loss=grid("loss"), error=grid("error"),
                       metrics={"error": grid("error")}, undefined=grid("undefined").astype(bool),
                       undefined_reason=reasons, points=points)


def plane_figure(name: str, tables: dict, out: Path) -> list[Path]:
    plane = tables["plane"][tables["plane"].setting == name]
    path = tables["path"][tables["path"].setting == name]
    return plot_plane(plane_result(plane, path), out / f"plane_{name}", path_coords=path[["a", "b"]].to_numpy(),
                      distances=path.distance.to_numpy(), split=plane.split.iloc[0],
                      title=f"{name}: trajectory plane (a: init → final, b: residuals' 1st PC)")


def line_figure(line: pd.DataFrame, out: Path) -> list[Path]:
    setup_style()
    split = line.split.iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.4), layout="constrained")
    for i, (name, per) in enumerate(line.groupby("setting", sort=False)):
        for ax, column in zip(axes, ("loss", "error")):
            ax.plot(per.alpha, per[column], color=PALETTE[i % len(PALETTE)], lw=1.2, label=name)
    for ax, label in zip(axes, (f"{split.capitalize()} loss (cross-entropy)", f"{split.capitalize()} error")):
        ax.set_xlabel("α  (0: initial network, 1: final network)")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    axes[0].legend(frameon=False)
    return save_figure(fig, out / "line")


def draw_all(tables: dict, out: Path) -> list[Path]:
    """Every figure of the study from its tables (plane, path, line)."""
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for name in dict.fromkeys(tables["plane"].setting):
        figures += plane_figure(name, tables, out)
    return figures + line_figure(tables["line"], out)
