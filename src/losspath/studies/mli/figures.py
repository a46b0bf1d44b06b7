"""Figures of the MLI-plateau study (Wang et al. 2023) and of its toy model.

Every function takes the study's tidy tables (pandas) and writes PNG + PDF through `save_figure`.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...metrics import REGIME_INSIDE, REGIME_OUTSIDE
from ...plots.common import COLUMN_WIDTH, PALETTE, save_figure, setup_style

SCHEME_STYLE = {"all": dict(color=PALETTE[0], ls="-"), "homogeneous": dict(color=PALETTE[1], ls="--"),
                "homogeneous_output": dict(color=PALETTE[4], ls="-."), "weights": dict(color=PALETTE[2], ls=":")}
CLASS_COLORS = plt.get_cmap("tab10").colors


def featured_net(summary, dataset: str) -> dict | None:
    """The net the study's figures show for `dataset`: a bias-ful MLP that converged together with its
    bias-free twin, at the smallest such init scale (the paper's regime, as far as this sweep reaches it), the
    deepest there, the lowest seed; without such a pair, the bias-ful net that comes first in that order."""
    s = summary[(summary.dataset == dataset) & (summary.family == "mlp") & (summary.scheme == "all")]
    ful = s[s.bias]
    if ful.empty:
        return None
    keys = ["depth", "init_scale", "replicate"]
    twin = s[~s.bias].set_index(keys).status.reindex(pd.MultiIndex.from_frame(ful[keys])).to_numpy()
    ful = ful.assign(_ok=((ful.status == "converged").to_numpy() & (twin == "converged")).astype(int))
    row = ful.sort_values(["_ok", "init_scale", "depth", "replicate"], ascending=[False, True, False, True]).iloc[0]
    return dict(depth=int(row.depth), init_scale=float(row.init_scale), replicate=int(row.replicate),
                converged=row.status == "converged", ratio=float(row.ratio_logits))


def _select(frame, dataset, depth, scale, bias, replicate):
    return frame[(frame.dataset == dataset) & (frame.family == "mlp") & (frame.depth == depth)
                 & np.isclose(frame.init_scale, scale) & (frame.bias == bias) & (frame.replicate == replicate)]


def _title(name: str, f: dict) -> str:
    return (f"{name}: {f['depth']} hidden, init ×{f['init_scale']:g}, seed {f['replicate']}, r = {f['ratio']:.2g}"
            + ("" if f["converged"] else " (not converged)"))


def plot_plateau_vs_dominance(summary, path) -> list[Path]:
    """Error plateau end (against chance) of every converged MLP against its init-dominance ratio, one panel
    per data set: with biases (scheme all), bias-free twins, and the two homogeneous schemes."""
    setup_style()
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(1, len(names), figsize=(COLUMN_WIDTH * len(names) / 1.2, 2.4), squeeze=False,
                             sharey=True)
    s = summary[(summary.status == "converged") & (summary.family == "mlp")]
    variants = (("with biases", True, "all", PALETTE[0], "o"), ("bias-free twin", False, "all", "black", "x"),
                ("homogeneous", True, "homogeneous", PALETTE[1], "^"),
                ("output-bias homog.", True, "homogeneous_output", PALETTE[4], "v"))
    for ax, name in zip(axes[0], names):
        d = s[s.dataset == name]
        ratio = d[d.bias & (d.scheme == "all")].set_index(["depth", "init_scale", "replicate"]).ratio_logits
        for label, bias, scheme, color, marker in variants:
            v = d[(d.bias == bias) & (d.scheme == scheme)].set_index(["depth", "init_scale", "replicate"])
            x = ratio.reindex(v.index)  # a twin is placed at its bias-ful sibling's ratio
            ax.scatter(x, v.error_plateau_end_chance, s=9, color=color, marker=marker, label=label, lw=0.8)
        ax.axvline(REGIME_INSIDE, color="grey", lw=0.6, ls=":")
        ax.axvline(REGIME_OUTSIDE, color="grey", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("init-dominance ratio r")
        ax.set_title(f"{name} (left of dotted: the paper's regime)")
    axes[0, 0].set_ylabel("error plateau end α (vs chance)")
    axes[0, 0].set_ylim(0, 1.02)
    axes[0, 0].legend(frameon=False, fontsize=6)
    return save_figure(fig, path)


def plot_curves(curves, summary, path) -> list[Path]:
    """Loss (top) and error (bottom) along init → final for the featured net of each data set, one line per
    scheme, and its bias-free twin in black."""
    setup_style()
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(2, len(names), figsize=(COLUMN_WIDTH * len(names) / 1.2, 3.6), squeeze=False,
                             sharex=True)
    for j, name in enumerate(names):
        f = featured_net(summary, name)
        if f is None:
            continue
        c = _select(curves, name, f["depth"], f["init_scale"], True, f["replicate"])
        for scheme, style in SCHEME_STYLE.items():
            line = c[c.scheme == scheme]
            axes[0, j].plot(line.alpha, line.loss, label=scheme, **style)
            axes[1, j].plot(line.alpha, line.error, label=scheme, **style)
        free = _select(curves, name, f["depth"], f["init_scale"], False, f["replicate"])
        axes[0, j].plot(free.alpha, free.loss, color="black", lw=0.8, label="no biases")
        axes[1, j].plot(free.alpha, free.error, color="black", lw=0.8, label="no biases")
        axes[0, j].set_title(_title(name, f))
        axes[1, j].set_xlabel("α (0 = init, 1 = trained)")
    axes[0, 0].set_ylabel("training loss")
    axes[1, 0].set_ylabel("training error")
    axes[0, 0].legend(frameon=False, fontsize=6)
    return save_figure(fig, path)


def plot_biases(biases, summary, path) -> list[Path]:
    """Final last-layer bias per class of each data set's featured net; the number on a bar is the order in
    which that class was learned (1 = first), the orange bar the argmax class."""
    setup_style()
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(1, len(names), figsize=(COLUMN_WIDTH * len(names) / 1.2, 1.9), squeeze=False)
    for j, name in enumerate(names):
        f, ax = featured_net(summary, name), axes[0, j]
        if f is None:
            continue
        b = _select(biases, name, f["depth"], f["init_scale"], True, f["replicate"]).sort_values("cls")
        top = int(b.bias_value.to_numpy().argmax())
        ax.bar(b.cls, b.bias_value, color=[PALETTE[1] if i == top else PALETTE[5] for i in range(len(b))])
        span = float(np.ptp(b.bias_value.to_numpy())) or 1.0
        for c, v, r in zip(b.cls, b.bias_value, b.learned_rank):
            ax.text(c, v + (0.04 if v >= 0 else -0.04) * span, str(r) if r > 0 else "–", ha="center",
                    va="bottom" if v >= 0 else "top", fontsize=6)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xticks(b.cls)
        ax.set_xlabel("class (number: order learned)")
        ax.set_title(_title(name, f))
    axes[0, 0].set_ylabel("last-layer bias")
    return save_figure(fig, path)


def plot_class_shares(shares: dict, summary, path, schemes=("all", "homogeneous", "homogeneous_output")) -> list[Path]:
    """Share of examples predicted as each class along α for the featured net of each data set, one row per
    scheme; dashed: the error plateau end (vs chance); hatched: the argmax class of the last-layer bias.
    `shares` maps each net's Setting to {scheme: points × K shares}."""
    setup_style()
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(len(schemes), len(names), figsize=(COLUMN_WIDTH * len(names) / 1.2, 1.6 * len(schemes)),
                             squeeze=False, sharex=True, sharey=True)
    for j, name in enumerate(names):
        f = featured_net(summary, name)
        if f is None:
            continue
        per = next((v for k, v in shares.items() if (k.dataset, k.family, k.depth, k.bias, k.seed) ==
                    (name, "mlp", f["depth"], True, f["replicate"]) and math.isclose(k.init_scale, f["init_scale"])), {})
        row = _select(summary, name, f["depth"], f["init_scale"], True, f["replicate"])
        for i, scheme in enumerate(schemes):
            ax = axes[i, j]
            if scheme not in per:
                continue
            sh = per[scheme]
            polys = ax.stackplot(np.linspace(0, 1, sh.shape[0]), sh.T,
                                 colors=[CLASS_COLORS[c % 10] for c in range(sh.shape[1])], lw=0)
            r = row[row.scheme == scheme]
            top = int(r.bias_argmax_class.iloc[0]) if len(r) else -1
            if top >= 0:
                polys[top].set_hatch("////")
                polys[top].set_edgecolor("white")
            end = float(r.error_plateau_end_chance.iloc[0]) if len(r) else math.nan
            if math.isfinite(end):
                ax.axvline(end, color="black", lw=0.8, ls="--")
            ax.set_ylim(0, 1)
            ax.set_title(f"{name}, scheme {scheme}")
        axes[-1, j].set_xlabel("α")
    for i in range(len(schemes)):
        axes[i, 0].set_ylabel("share predicted")
    return save_figure(fig, path)


def draw_plateau_study(tables: dict, shares: dict, out) -> list[Path]:
    """All figures of `losspath reproduce mli-plateau`; returns the files written."""
    out = Path(out)
    curves, summary, biases = tables["curves"], tables["summary"], tables["biases"]
    files = plot_plateau_vs_dominance(summary, out / "plateau_vs_dominance")
    files += plot_curves(curves, summary, out / "curves_by_scheme")
    files += plot_class_shares(shares, summary, out / "class_shares")
    files += plot_biases(biases, summary, out / "last_layer_biases")
    return files


# ------------------------------------------------------------------------------------------------ toy model

def plot_toy_dynamics(dynamics, path, init_scale: float | None = None) -> list[Path]:
    """Per class, the norm of its end-to-end weight (top) and its bias (bottom) over training, one column per
    depth r, at one init scale (default the smallest); the dotted line marks when the class was learned."""
    setup_style()
    scale = float(dynamics.init_scale.min()) if init_scale is None else init_scale
    d = dynamics[np.isclose(dynamics.init_scale, scale) & (dynamics.replicate == 0)]
    depths = sorted(d.r.unique())
    fig, axes = plt.subplots(2, len(depths), figsize=(1.6 * len(depths) + 0.6, 3.3), squeeze=False, sharex="col",
                             layout="constrained")
    for j, r in enumerate(depths):
        g = d[d.r == r]
        for c, per in g.groupby("cls"):
            color = PALETTE[int(c) % len(PALETTE)]
            label = f"class {c} (s={per.strength.iloc[0]:g})"
            axes[0, j].plot(per.step, per.weight_norm, color=color, label=label)
            axes[1, j].plot(per.step, per.bias_value, color=color)
            learned = per.learned_step.iloc[0]
            if learned >= 0:
                for ax in axes[:, j]:
                    ax.axvline(learned, color=color, lw=0.6, ls=":")
        axes[0, j].set_title(f"r = {r}")
        axes[1, j].set_xlabel("iteration")
    axes[0, 0].set_ylabel("‖end-to-end weight‖")
    axes[1, 0].set_ylabel("output bias")
    axes[0, 0].legend(frameon=False, fontsize=5)
    fig.suptitle(f"toy model, init ×{scale:g}: dotted = class learned", fontsize=8)
    return save_figure(fig, path)


def plot_toy_plateau(summary, path) -> list[Path]:
    """Plateau end (scheme all, trained nets, mean over replicates) against depth r (a line per init scale,
    left) and against init scale (a line per r, right); error (against chance) on top, loss (against log K)
    below, both from the first α > 0."""
    setup_style()
    s = summary[summary.scheme == "all"]
    fig, axes = plt.subplots(2, 2, figsize=(COLUMN_WIDTH * 1.6, 3.4), sharey=True, sharex="col")
    for i, col in enumerate(("error_plateau_end_chance", "loss_plateau_end_logk")):
        for k, (scale, g) in enumerate(s.groupby("init_scale")):
            m = g.groupby("r")[col].mean()
            axes[i, 0].plot(m.index, m.to_numpy(), marker="o", ms=3, color=PALETTE[k % len(PALETTE)],
                            label=f"init ×{scale:g}")
        for k, (r, g) in enumerate(s.groupby("r")):
            m = g.groupby("init_scale")[col].mean()
            axes[i, 1].plot(m.index, m.to_numpy(), marker="o", ms=3, color=PALETTE[k % len(PALETTE)], label=f"r = {r}")
        axes[i, 0].set_ylabel(("error" if i == 0 else "loss") + " plateau end α")
    axes[1, 0].set_xlabel("depth r")
    axes[1, 0].set_xticks(sorted(s.r.unique()))
    axes[1, 1].set_xlabel("init scale (× Kaiming)")
    axes[1, 1].set_xscale("log")
    axes[0, 0].set_ylim(0, 1.02)
    axes[0, 0].set_title("toy model: plateau vs depth")
    axes[0, 1].set_title("plateau vs init scale")
    for ax in axes[0]:
        ax.legend(frameon=False, fontsize=6)
    return save_figure(fig, path)


def plot_toy_curves(curves, path, init_scale: float | None = None) -> list[Path]:
    """Error and loss along init → final (scheme all) for every depth r at one init scale (default the smallest)."""
    setup_style()
    scale = float(curves.init_scale.min()) if init_scale is None else init_scale
    c = curves[np.isclose(curves.init_scale, scale) & (curves.replicate == 0)]
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH * 1.6, 1.9), sharex=True, layout="constrained")
    for k, (r, g) in enumerate(c[c.scheme == "all"].groupby("r")):
        axes[0].plot(g.alpha, g.error, color=PALETTE[k % len(PALETTE)], label=f"r = {r}")
        axes[1].plot(g.alpha, g.loss, color=PALETTE[k % len(PALETTE)])
    axes[0].set_ylabel("training error")
    axes[1].set_ylabel("training loss")
    for ax in axes:
        ax.set_xlabel("α")
    axes[1].legend(*axes[0].get_legend_handles_labels(), frameon=False, fontsize=6)
    fig.suptitle(f"toy model, init ×{scale:g}, scheme all", fontsize=8)
    return save_figure(fig, path)
