"""Figures of the basins study (Liao & Poggio, Theory II, Figs. 2–5 and 1E), one function per part.

MDS panels draw every model as its epoch number in its trajectory's colour, as the paper does; long GD
trajectories are drawn as lines with a number at every tenth of the run so that the numbers stay legible.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plots.common import COLUMN_WIDTH, PALETTE, save_figure, setup_style

CAPTIONS = {
    "part1_polynomial": "Fig. 2: ReLU and its polynomial fit (left); test error (middle) and mean training-batch "
                        "error (right) per epoch of the same convnet with either activation.",
    "part2_branches": "Fig. 3 runs: test error of every SGD trajectory over the stages (dashed: started from the "
                      "perturbed P).",
    "part3_mds": "Fig. 3: metric MDS of one layer's weights of every collected model (the number is its epoch "
                 "in its stage, the colour its run), all stages and the later stages separately.",
    "part3_mds_stages": "Fig. 3 / appendix: a separate MDS per stage.",
    "part4_gd": "Fig. 4: full-batch GD. Training error of the main trajectory, the branches and the averages "
                "½(main + branch) epoch by epoch (top); the same numbers in % as a grid (bottom).",
    "part4_gd_mds": "Fig. 4: MDS of one layer's weights along the GD main trajectory and its branches.",
    "part5_flatness": "Fig. 5: M_final perturbed by 0.1·std and retrained with GD, 4 times: training/test "
                      "error and loss (A1, A2, B1, B2), MDS of the repeats (C1) and of repeat 1 (C2).",
    "part5_confusion": "Fig. 5 / appendix: test-set confusion matrices of M_final and of the converged repeats.",
    "part6_lines": "Fig. 1E: training error (top) and loss (bottom) along straight lines parent → child and "
                   "between siblings.",
}


def _path(prefix: Path, stem: str) -> Path:
    return Path(f"{prefix}{stem}")


def _color(i: int) -> str:
    return PALETTE[int(i) % len(PALETTE)]


def fig_polynomial(frame: pd.DataFrame, degree: int, interval: float, prefix: Path) -> list[Path]:
    from ...models import fit_relu_polynomial

    setup_style()
    coeffs, fit_error = fit_relu_polynomial(degree, interval)
    fig, axes = plt.subplots(1, 3, figsize=(2 * COLUMN_WIDTH, 2.0), layout="constrained")
    x = np.linspace(-1.5 * interval, 1.5 * interval, 400)
    axes[0].axvspan(-interval, interval, color="0.92", lw=0)
    axes[0].plot(x, np.maximum(x, 0), color=_color(0), label="ReLU")
    axes[0].plot(x, np.polyval(coeffs[::-1], x), color=_color(1), ls="--",
                 label=f"degree {degree} (max err {fit_error:.2f})")
    axes[0].set_ylim(-0.5 * interval, 1.6 * interval)
    axes[0].set_xlabel("x (grey: fitting interval)")
    axes[0].legend(frameon=False, loc="lower right", fontsize=6)
    for ax, split, label in ((axes[1], "test", "Test error"), (axes[2], "train_batches", "Training-batch error")):
        for i, (net, per) in enumerate(frame[frame.split == split].groupby("net", sort=False)):
            ax.plot(per.epoch, per.error, color=_color(i), label=f"{net} net")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        _error_scale(ax)
    axes[1].legend(frameon=False)
    return save_figure(fig, _path(prefix, "part1_polynomial"))


def fig_branches(curves: pd.DataFrame, cfg, prefix: Path) -> list[Path]:
    setup_style()
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.2), layout="constrained")
    for ax, split, label in ((axes[0], "test", "Test error"), (axes[1], "train_batches", "Training-batch loss")):
        col = "error" if split == "test" else "loss"
        for (s, k), per in curves[curves.split == split].groupby(["stage", "run"]):
            ax.plot(per.global_epoch, per[col], color=_color(k - 1), lw=0.8, ls="--" if per.perturbed.iloc[0] else "-",
                    label=f"run {k}" if s == curves.stage.max() else None)
        if split == "test":
            _error_scale(ax)
        else:
            ax.set_yscale("log")
        for s in range(2, cfg.stages + 1):
            ax.axvline((s - 1) * cfg.epochs, color="0.85", lw=0.5, zorder=0)
        ax.set_xlabel("Epoch (grey lines: stage boundaries)")
        ax.set_ylabel(label)
    axes[0].legend(frameon=False, ncol=2)
    return save_figure(fig, _path(prefix, "part2_branches"))


def _error_scale(ax) -> None:
    """A log error axis for the curves drawn on `ax`; symlog (linear below 0.1 %) when an error is exactly 0."""
    ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    ys = np.concatenate(ys) if ys else np.ones(1)
    if np.nanmin(ys) > 0:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=1e-3, linscale=0.3)


def _numbers(ax, per: pd.DataFrame, color_of, every: int = 1, title: str | None = None) -> None:
    """Every point of an MDS panel as its epoch number (a tiny dot where a number is skipped)."""
    ax.scatter(per.x, per.y, s=1.5, c=[color_of(r) for r in per.itertuples()], lw=0)
    for r in per.itertuples():
        if r.epoch % every == 0:
            # out of the layout engine's bounding boxes: hundreds of labels would make it crawl
            ax.text(r.x, r.y, str(int(r.epoch)), color=color_of(r), fontsize=5, ha="center", va="center",
                    in_layout=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title, loc="left")


def fig_mds(frame: pd.DataFrame, cfg, prefix: Path) -> list[Path]:
    setup_style()

    def color(r):
        return _color(r.run - 1)

    layer = frame.layer.iloc[0]
    panels = [p for p in dict.fromkeys(frame.panel) if not p.startswith("stage ")]
    fig, axes = plt.subplots(1, len(panels), figsize=(2 * COLUMN_WIDTH, 3.0), layout="constrained", squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _numbers(ax, frame[frame.panel == panel], color, title=f"{panel} ({layer})")
    handles = [plt.Line2D([], [], color=_color(k - 1), lw=2, label=f"run {k}") for k in range(1, cfg.runs + 1)]
    axes[0][-1].legend(handles=handles, frameon=False, loc="center left", bbox_to_anchor=(1, 0.5))
    paths = save_figure(fig, _path(prefix, "part3_mds"))

    stages = [p for p in dict.fromkeys(frame.panel) if p.startswith("stage ")]
    cols = min(4, len(stages))
    rows = -(-len(stages) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * COLUMN_WIDTH, 1.7 * rows + 0.3), layout="constrained",
                             squeeze=False)
    for ax in axes.flat[len(stages):]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, stages):
        _numbers(ax, frame[frame.panel == panel], color, title=panel)
    axes.flat[min(len(stages), cols) - 1].legend(handles=handles, frameon=False, fontsize=5, loc="best")
    return paths + save_figure(fig, _path(prefix, "part3_mds_stages"))


def _grid_epochs(T: int, branch_at) -> list[int]:
    """≈ 12 columns: the branch epochs, the last epoch and a spread in between."""
    spread = np.unique(np.round(np.geomspace(1, T, 8)).astype(int))
    return sorted({0, T, *branch_at, *spread.tolist()})


def fig_gd(table: pd.DataFrame, mds: pd.DataFrame, cfg, prefix: Path) -> list[Path]:
    setup_style()
    T = cfg.gd_epochs
    branch_at = sorted(set(cfg.branch_at))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(2 * COLUMN_WIDTH, 2.2 + 0.25 * (1 + 2 * len(branch_at))),
                                      layout="constrained", height_ratios=[1.0, 0.35 * (1 + 2 * len(branch_at))])
    main = table[table.trajectory == "main"]
    top.plot(main.epoch, main.train_error, color="black", lw=1.2, label="main")
    for i, b in enumerate(branch_at):
        for traj, ls in (("branch", "-"), ("average", ":")):
            per = table[(table.trajectory == traj) & (table.branch_at == b)]
            top.plot(per.epoch, per.train_error, color=_color(i), ls=ls, lw=0.9,
                     label=f"{traj} @{b}" if traj == "branch" else f"avg @{b}")
    _error_scale(top)
    top.set_xlabel("Epoch of full-batch GD")
    top.set_ylabel("Training error")
    top.legend(frameon=False, ncol=5, fontsize=6, loc="lower left", bbox_to_anchor=(0.0, 1.0))

    epochs = _grid_epochs(T, branch_at)
    labels, grid = ["main"], [main.set_index("epoch").train_error.reindex(epochs).to_numpy()]
    for b in branch_at:
        for traj in ("branch", "average"):
            per = table[(table.trajectory == traj) & (table.branch_at == b)].set_index("epoch").train_error
            labels.append(f"{'branch' if traj == 'branch' else 'avg'} @{b}")
            grid.append(per.reindex(epochs).to_numpy())
    grid = np.array(grid, dtype=float) * 100
    bottom.imshow(np.where(np.isnan(grid), np.nan, grid), aspect="auto", cmap="Greys", vmin=0,
                  vmax=max(1.0, 2 * np.nanmax(grid)))
    for (i, j), v in np.ndenumerate(grid):
        bottom.text(j, i, "–" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=5.5, in_layout=False)
    bottom.set_xticks(range(len(epochs)), [str(e) for e in epochs])
    bottom.set_yticks(range(len(labels)), labels)
    bottom.set_xlabel("Epoch (training error in %)")
    for side in ("top", "right", "left", "bottom"):
        bottom.spines[side].set_visible(False)
    paths = save_figure(fig, _path(prefix, "part4_gd"))

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.3, COLUMN_WIDTH * 1.1), layout="constrained")
    names = list(dict.fromkeys(mds.trajectory))
    every = max(1, T // 10)
    for name in names:
        per = mds[mds.trajectory == name].sort_values("epoch")
        c = "black" if name == "main" else _color(branch_at.index(int(name.split("@")[1])))
        ax.plot(per.x, per.y, color=c, lw=0.6, alpha=0.6, label=name)
        _numbers(ax, per, lambda r, c=c: c, every=every)
    ax.set_title(f"GD main trajectory and branches ({mds.layer.iloc[0]})", loc="left")
    ax.legend(frameon=False, fontsize=6)
    return paths + save_figure(fig, _path(prefix, "part4_gd_mds"))


def fig_flat(curves: pd.DataFrame, confusion: pd.DataFrame, mds: pd.DataFrame, prefix: Path) -> list[Path]:
    setup_style()
    fig, axes = plt.subplots(2, 3, figsize=(2 * COLUMN_WIDTH, 3.8), layout="constrained")
    spots = {("train", "error"): (0, 0, "A1 training error"), ("test", "error"): (0, 1, "A2 test error"),
             ("train", "loss"): (1, 0, "B1 training loss"), ("test", "loss"): (1, 1, "B2 test loss")}
    for (split, col), (i, j, title) in spots.items():
        ax = axes[i, j]
        for r, per in curves[curves.split == split].groupby("repeat"):
            ax.plot(per.epoch, per[col], color=_color(r - 1), lw=0.9, label=f"repeat {r}")
        ax.set_title(title, loc="left")
        ax.set_xlabel("GD epoch after the perturbation")
        if split == "train" and col == "error":
            _error_scale(ax)
        elif split == "train":
            ax.set_yscale("log")
    axes[0, 0].legend(frameon=False, fontsize=6)
    every = max(1, int(curves.epoch.max()) // 10)
    panels = list(dict.fromkeys(mds.panel))
    for ax, panel, title in zip(axes[:, 2], panels, ("C1", "C2")):
        per = mds[mds.panel == panel]
        for r, traj in per.groupby("run"):
            traj = traj.sort_values("epoch")
            ax.plot(traj.x, traj.y, color=_color(r - 1), lw=0.5, alpha=0.6)
        _numbers(ax, per, lambda row: _color(row.run - 1), every=every, title=f"{title} MDS, {panel}")
    paths = save_figure(fig, _path(prefix, "part5_flatness"))

    models = list(dict.fromkeys(confusion.model))
    fig, axes = plt.subplots(1, len(models), figsize=(2 * COLUMN_WIDTH, 2 * COLUMN_WIDTH / len(models) + 0.4),
                             layout="constrained", squeeze=False)
    for ax, name in zip(axes[0], models):
        per = confusion[confusion.model == name]
        k = int(per.true.max()) + 1
        m = np.zeros((k, k))
        m[per.true.to_numpy(), per.predicted.to_numpy()] = per["count"].to_numpy()
        ax.imshow(np.log1p(m), cmap="Blues")
        off = int(m.sum() - np.trace(m))
        ax.set_title(f"{name}\n{off} errors", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].set_ylabel("true class")
    axes[0][0].set_xlabel("predicted")
    return paths + save_figure(fig, _path(prefix, "part5_confusion"))


def fig_lines(curves: pd.DataFrame, table: pd.DataFrame, prefix: Path) -> list[Path]:
    setup_style()
    families = list(dict.fromkeys(table.family))
    fig, axes = plt.subplots(2, len(families), figsize=(2 * COLUMN_WIDTH, 3.4), layout="constrained",
                             squeeze=False, sharex=True)
    kinds = {"parent-child": _color(0), "siblings": _color(1)}
    for j, family in enumerate(families):
        per = curves[curves.family == family]
        for (line, kind), c in per.groupby(["line", "kind"]):
            for i, col in enumerate(("error", "loss")):
                axes[i, j].plot(c.alpha, c[col], color=kinds[kind], lw=0.7, alpha=0.7)
        axes[0, j].set_title(family, loc="left")
        axes[1, j].set_xlabel("α")
        _error_scale(axes[0, j])
        axes[1, j].set_yscale("log")
    axes[0, 0].set_ylabel("Training error")
    axes[1, 0].set_ylabel("Training loss")
    handles = [plt.Line2D([], [], color=c, label=k) for k, c in kinds.items()]
    axes[0, 0].legend(handles=handles, frameon=False, fontsize=6)
    return save_figure(fig, _path(prefix, "part6_lines"))
