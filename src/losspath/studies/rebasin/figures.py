"""Figures of the Git Re-Basin study: loss along the line between two replicates, naive vs permuted (Ainsworth
et al. 2023, Fig. 2), and the barrier against width (their width plot). BatchNorm networks: solid lines with
statistics recomputed at every point, dashed with interpolated statistics (Jordan et al. 2023, REPAIR)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ...plots.common import COLUMN_WIDTH, PALETTE, save_figure, setup_style

METHOD_COLORS = {"naive": PALETTE[7], "weight": PALETTE[0], "activation": PALETTE[1]}
METHOD_LABELS = {"naive": "naive", "weight": "weight matching", "activation": "activation matching"}
STYLES = {"recompute": "-", "interpolate": "--"}


def _panels(names):
    setup_style()
    fig, axes = plt.subplots(1, len(names), figsize=(COLUMN_WIDTH * len(names), 2.5), squeeze=False,
                             layout="constrained")
    return fig, axes[0]


def _style(per: pd.DataFrame, bn: str) -> str:
    return "-" if per.batchnorm.nunique() == 1 else STYLES[bn]


def rebasin_lines(curves: pd.DataFrame, out: Path) -> list[Path]:
    names = list(dict.fromkeys(curves.setting))
    fig, axes = _panels(names)
    for ax, name in zip(axes, names):
        per = curves[curves.setting == name]
        per = per[per.width == per.width.max()]
        for (method, bn), g in per.groupby(["method", "batchnorm"], sort=False):
            mean = g.groupby("alpha").loss.mean()
            ax.plot(mean.index, mean.to_numpy(), color=METHOD_COLORS[method], ls=_style(per, bn), lw=1.2,
                    label=METHOD_LABELS[method] if bn == per.batchnorm.iloc[0] else None)
        bn = " (solid: BN recomputed, dashed: interpolated)" if per.batchnorm.nunique() > 1 else ""
        ax.set_title(f"{name}, width {int(per.width.max())}{bn}", loc="left")
        ax.set_xlabel("α  (0: replicate A, 1: replicate B)")
    axes[0].set_ylabel(f"{curves.split.iloc[0].capitalize()} loss (cross-entropy)")
    axes[0].legend(frameon=False)
    return save_figure(fig, out / "rebasin_lines")


def rebasin_width(summary: pd.DataFrame, out: Path) -> list[Path]:
    names = list(dict.fromkeys(summary.setting))
    fig, axes = _panels(names)
    for ax, name in zip(axes, names):
        per = summary[summary.setting == name]
        for (method, bn), g in per.groupby(["method", "batchnorm"], sort=False):
            mean = g.groupby("width").loss_barrier_height.mean()
            ax.plot(mean.index, mean.to_numpy(), color=METHOD_COLORS[method], ls=_style(per, bn), marker="o", ms=3,
                    lw=1.2, label=METHOD_LABELS[method] if bn == per.batchnorm.iloc[0] else None)
        ax.set_xscale("log", base=2)
        widths = sorted(per.width.unique())
        ax.set_xticks(widths, [str(int(w)) for w in widths])
        ax.minorticks_off()
        ax.set_title(name + (" (solid: BN recomputed, dashed: interpolated)" if per.batchnorm.nunique() > 1 else ""),
                     loc="left")
        ax.set_xlabel("Width")
    axes[0].set_ylabel(f"{summary.split.iloc[0].capitalize()} loss barrier height")
    axes[0].legend(frameon=False)
    return save_figure(fig, out / "rebasin_width")


def draw_all(tables: dict, out: Path) -> list[Path]:
    """Both figures from the study's tables (curves, summary)."""
    return rebasin_lines(tables["curves"], out) + rebasin_width(tables["summary"], out)
