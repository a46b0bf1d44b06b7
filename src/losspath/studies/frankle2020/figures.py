"""Figures 1–3 of Frankle 2020, laid out like the paper: loss left / error right (Figs. 1, 2), loss top /
error bottom (Fig. 3); means over replicates with ± one standard deviation bands. Undefined points (NaN: a
state along the line that is no valid network, see LineResult) are drawn as gaps."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from ...plots.common import COLUMN_WIDTH, PALETTE, save_figure, setup_style

QUANTITIES = ("loss", "error")


def _mean_std(groups, column: str) -> tuple[pd.Series, pd.Series]:
    """Mean and std over replicates per group; NaN (a gap in the figure) where any replicate is undefined
    there (pandas would otherwise average the defined replicates alone)."""
    values = groups[column]
    undefined = values.apply(lambda v: v.isna().any())
    mean, std = values.mean().mask(undefined), values.std(ddof=0).fillna(0).mask(undefined)
    return mean, std


def _band(ax, x, frame: pd.DataFrame, column: str, color, label=None):
    mean, std = _mean_std(frame, column)
    ax.plot(x, mean, color=color, lw=1.2, label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.25, lw=0)


def fig1_from_init(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Fig. 1: loss and error from the state at iteration 0 (α = 0) to the last iteration (α = 1)."""
    setup_style()
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.4), layout="constrained")
    init = curves[curves.start_step == 0]
    for i, (name, per) in enumerate(init.groupby("setting", sort=False)):
        g = per.groupby("alpha")
        for ax, col in zip(axes, QUANTITIES):
            _band(ax, np.array(list(g.groups)), g, col, PALETTE[i % len(PALETTE)], name)
    _label(axes, curves, "α  (0: iteration 0, 1: last iteration)")
    axes[0].legend(frameon=False)
    return save_figure(fig, out / "fig1_from_init")


def fig2_from_t(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Fig. 2: one curve per start iteration t (colour on a log scale), a row per setting."""
    setup_style()
    names = list(dict.fromkeys(curves.setting))
    fig, axes = plt.subplots(len(names), 2, figsize=(2 * COLUMN_WIDTH, 2.2 * len(names)), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis")
    for row, name in zip(axes, names):
        per = curves[curves.setting == name]
        steps = sorted(per.start_step.unique())
        norm = LogNorm(vmin=max(1, min(s for s in steps if s > 0) if any(steps) else 1), vmax=max(2, max(steps)))
        for t in steps:
            g = per[per.start_step == t].groupby("alpha")
            color = cmap(norm(max(t, norm.vmin))) if t > 0 else "black"
            for ax, col in zip(row, QUANTITIES):
                ax.plot(list(g.groups), _mean_std(g, col)[0], color=color, lw=0.9, ls="--" if t == 0 else "-")
        row[0].set_title(f"{name} (dashed: t = 0)", loc="left")
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=row[1], label="start iteration t")
    _label(axes[-1], curves, "α  (0: iteration t, 1: last iteration)")
    for row in axes[:-1]:
        for ax, ylabel in zip(row, _ylabels(curves)):
            ax.set_ylabel(ylabel)
    return save_figure(fig, out / "fig2_from_t")


def fig3_max_increase(summary: pd.DataFrame, out: Path) -> list[Path]:
    """Fig. 3: maximum increase in loss (top) and error (bottom) along the line from iteration t, vs t."""
    setup_style()
    fig, axes = plt.subplots(2, 1, figsize=(COLUMN_WIDTH * 1.3, 4.0), sharex=True, layout="constrained")
    for i, (name, per) in enumerate(summary.groupby("setting", sort=False)):
        g = per.groupby("start_step")
        t = np.array(list(g.groups), dtype=float)
        for ax, col in zip(axes, ("max_loss_increase", "max_error_increase")):
            _band(ax, t, g, col, PALETTE[i % len(PALETTE)], name)
    split = summary.split.iloc[0] if "split" in summary else "test"
    for ax, label in zip(axes, (f"Max. increase in {split} loss", f"Max. increase in {split} error")):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_ylabel(label)
    axes[1].set_xlabel("Start iteration t (log scale; 0 at the left)")
    axes[0].legend(frameon=False)
    return save_figure(fig, out / "fig3_max_increase")


def _ylabels(curves) -> list[str]:
    split = curves.split.iloc[0] if len(curves) else "test"
    return [f"{split.capitalize()} loss (cross-entropy)", f"{split.capitalize()} error"]


def _label(axes, curves, xlabel):
    for ax, ylabel in zip(axes, _ylabels(curves)):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)


def draw_all(tables: dict, out: Path) -> list[Path]:
    """Figures 1-3 from the study's tables (curves, summary)."""
    curves = tables["curves"]
    return fig1_from_init(curves, out) + fig2_from_t(curves, out) + fig3_max_increase(tables["summary"], out)
