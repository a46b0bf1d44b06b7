"""Figures of the instability analysis (Frankle et al. 2020, linear mode connectivity, Figs. 2-3): the error
barrier height between two copies against the spawn step k, and the error along their lines."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from ...plots.common import COLUMN_WIDTH, PALETTE, save_figure, setup_style


def _mean_std(frame: pd.DataFrame, by: str, column: str):
    g = frame.groupby(by)[column]
    return np.array(list(g.groups), dtype=float), g.mean().to_numpy(), g.std(ddof=0).fillna(0).to_numpy()


def instability_vs_k(summary: pd.DataFrame, out: Path, threshold: float) -> list[Path]:
    """One panel per split: barrier height (solid, ± std band) and chord barrier (dotted) against k."""
    setup_style()
    splits = list(dict.fromkeys(summary.split))
    fig, axes = plt.subplots(1, len(splits), figsize=(COLUMN_WIDTH * len(splits), 2.4), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, split in zip(axes[0], splits):
        for i, name in enumerate(dict.fromkeys(summary.setting)):
            per = summary[(summary.setting == name) & (summary.split == split)]
            color = PALETTE[i % len(PALETTE)]
            k, mean, std = _mean_std(per, "k", "error_barrier_height")
            ax.plot(k, mean, color=color, lw=1.2, marker="o", ms=2.5, label=name)
            ax.fill_between(k, mean - std, mean + std, color=color, alpha=0.25, lw=0)
            k, chord, _ = _mean_std(per, "k", "error_barrier")
            ax.plot(k, chord, color=color, lw=0.9, ls=":")
        ax.axhline(threshold, color="0.6", lw=0.8, ls="--")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(-0.3, max(2.0, float(summary.k.max()) * 1.5))  # no negative decades on the symlog axis
        ax.set_xlabel("Spawn iteration k (log scale; 0 at the left)")
        ax.set_title(f"{split} set", loc="left")
    axes[0][0].set_ylabel("Error barrier height")
    axes[0][0].legend(frameon=False)
    return save_figure(fig, out / "instability_vs_k")


def instability_lines(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Test error along the line between the two copies, one curve per k (colour, log scale; black: k = 0)."""
    setup_style()
    test = curves[curves.split == "test"] if (curves.split == "test").any() else curves
    names = list(dict.fromkeys(test.setting))
    fig, axes = plt.subplots(1, len(names), figsize=(COLUMN_WIDTH * len(names), 2.4), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axes[0], names):
        per = test[test.setting == name]
        ks = sorted(per.k.unique())
        norm = LogNorm(vmin=1, vmax=max(2, max(ks)))
        for k in ks:
            alpha, mean, _ = _mean_std(per[per.k == k], "alpha", "error")
            ax.plot(alpha, mean, color=cmap(norm(k)) if k > 0 else "black", lw=0.9)
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="spawn iteration k")
        ax.set_title(f"{name} (black: k = 0)", loc="left")
        ax.set_xlabel("α  (0: copy 1, 1: copy 2)")
    axes[0][0].set_ylabel(f"{test.split.iloc[0].capitalize()} error")
    return save_figure(fig, out / "instability_lines")


def draw_all(tables: dict, out: Path, threshold: float) -> list[Path]:
    """Both figures from the study's tables (curves, summary)."""
    return instability_vs_k(tables["summary"], out, threshold) + instability_lines(tables["curves"], out)
