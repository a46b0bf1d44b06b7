"""Figures of the MLI-plateau study (Wang et al. 2023) and of its toy model.

Every function takes the study's tidy tables (pandas) and writes PNG + PDF through `save_figure`.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .common import COLUMN_WIDTH, PALETTE, save_figure, setup_style

SCHEME_STYLE = {"all": dict(color=PALETTE[0], ls="-"), "homogeneous": dict(color=PALETTE[1], ls="--"),
                "weights": dict(color=PALETTE[2], ls=":")}
CLASS_COLORS = plt.get_cmap("tab10").colors


def _featured(summary, dataset: str) -> dict | None:
    """The net each study figure shows for `dataset`: the deepest bias-ful MLP at the init scale closest to 1
    (replicate 0), preferring a trained one."""
    s = summary[(summary.dataset == dataset) & (summary.family == "mlp") & summary.bias & (summary.replicate == 0)
                & (summary.scheme == "all")]
    if s.empty:
        return None
    s = s.assign(_trained=s.trained.astype(int), _dist=(np.log(s.init_scale)).abs())
    row = s.sort_values(["_trained", "depth", "_dist"], ascending=[False, False, True]).iloc[0]
    return dict(depth=int(row.depth), init_scale=float(row.init_scale), trained=bool(row.trained))


def _select(frame, dataset, depth, scale, bias, family="mlp", replicate=0):
    return frame[(frame.dataset == dataset) & (frame.family == family) & (frame.depth == depth)
                 & np.isclose(frame.init_scale, scale) & (frame.bias == bias) & (frame.replicate == replicate)]


def plot_curves(curves, summary, path) -> list[Path]:
    """Loss (top) and error (bottom) along init → final for the featured deep net of each data set, one line
    per scheme, and its bias-free twin (plain interpolation) in black."""
    setup_style()
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(2, len(names), figsize=(COLUMN_WIDTH * len(names) / 1.4, 3.6), squeeze=False,
                             sharex=True)
    for j, name in enumerate(names):
        f = _featured(summary, name)
        if f is None:
            continue
        for scheme, style in SCHEME_STYLE.items():
            c = _select(curves, name, f["depth"], f["init_scale"], True)
            c = c[c.scheme == scheme]
            axes[0, j].plot(c.alpha, c.loss, label=scheme, **style)
            axes[1, j].plot(c.alpha, c.error, label=scheme, **style)
        free = _select(curves, name, f["depth"], f["init_scale"], False)
        free = free[free.scheme == "all"]
        if len(free):
            axes[0, j].plot(free.alpha, free.loss, color="black", lw=0.8, label="no biases")
            axes[1, j].plot(free.alpha, free.error, color="black", lw=0.8, label="no biases")
        axes[0, j].set_title(f"{name}: {f['depth']} hidden layers, init ×{f['init_scale']:g}"
                             + ("" if f["trained"] else " (not trained)"))
        axes[1, j].set_xlabel("α (0 = init, 1 = trained)")
    axes[0, 0].set_ylabel("training loss")
    axes[1, 0].set_ylabel("training error")
    axes[0, 0].legend(frameon=False)
    return save_figure(fig, path)


def plot_plateau_vs(summary, x: str, path) -> list[Path]:
    """Plateau end (error top, loss bottom; scheme `all`, trained nets, mean over replicates) against `x`
    ("depth": a line per init scale, bias-free twins dashed; "init_scale": a line per depth and the convnet)."""
    setup_style()
    s = summary[(summary.scheme == "all") & summary.trained]
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(2, len(names), figsize=(COLUMN_WIDTH * len(names) / 1.4, 3.6), squeeze=False,
                             sharex=True, sharey=True)
    for j, name in enumerate(names):
        d = s[s.dataset == name]
        for i, metric in enumerate(("error_plateau_end", "loss_plateau_end")):
            ax = axes[i, j]
            if x == "depth":
                mlp = d[d.family == "mlp"]
                for k, (scale, g) in enumerate(mlp.groupby("init_scale")):
                    for bias, ls in ((True, "-"), (False, "--")):
                        m = g[g.bias == bias].groupby("depth")[metric].mean()
                        ax.plot(m.index, m.to_numpy(), ls=ls, marker="o", ms=3, color=PALETTE[k % len(PALETTE)],
                                label=f"init ×{scale:g}" if bias else None)
                ax.set_xscale("log", base=2)
                ax.set_xticks(sorted(mlp.depth.unique()), [str(v) for v in sorted(mlp.depth.unique())])
            else:
                biased = d[d.bias]
                groups = [(f"{dep} hidden", g) for dep, g in biased[biased.family == "mlp"].groupby("depth")]
                groups += [(model, g) for model, g in biased[biased.family == "conv"].groupby("model")]
                for k, (label, g) in enumerate(groups):
                    m = g.groupby("init_scale")[metric].mean()
                    ax.plot(m.index, m.to_numpy(), marker="o", ms=3, color=PALETTE[k % len(PALETTE)], label=label,
                            ls="-" if "hidden" in label else "-.")
                ax.set_xscale("log", base=2)
                ticks = sorted(d.init_scale.unique())
                ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
            ax.set_ylim(0, 1.02)
        axes[0, j].set_title(name + (" (dashed: bias-free twins)" if x == "depth" else " (nets with biases)"))
        if x != "depth" and axes[0, j].get_legend_handles_labels()[0]:
            axes[0, j].legend(frameon=False, fontsize=6)
        axes[1, j].set_xlabel("hidden layers" if x == "depth" else "init scale (× Kaiming)")
    axes[0, 0].set_ylabel("error plateau end α")
    axes[1, 0].set_ylabel("loss plateau end α")
    handles = [h for ax in axes[0] for h in [ax.get_legend_handles_labels()] if h[0]]
    if handles and x == "depth":
        axes[0, -1].legend(*handles[0], frameon=False, fontsize=6)
    return save_figure(fig, path)


def plot_biases(biases, summary, path) -> list[Path]:
    """Final last-layer bias per class of each data set's featured net; the number on a bar is the order in
    which that class was learned (1 = first), the darkest bar the argmax class."""
    setup_style()
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(1, len(names), figsize=(COLUMN_WIDTH * len(names) / 1.4, 1.9), squeeze=False)
    for j, name in enumerate(names):
        f, ax = _featured(summary, name), axes[0, j]
        if f is None:
            continue
        b = _select(biases, name, f["depth"], f["init_scale"], True).sort_values("cls")
        top = int(b.bias_value.to_numpy().argmax())
        colors = [PALETTE[1] if i == top else PALETTE[5] for i in range(len(b))]
        ax.bar(b.cls, b.bias_value, color=colors)
        span = float(np.ptp(b.bias_value.to_numpy())) or 1.0
        for c, v, r in zip(b.cls, b.bias_value, b.learned_rank):
            ax.text(c, v + (0.04 if v >= 0 else -0.04) * span, str(r) if r > 0 else "–", ha="center",
                    va="bottom" if v >= 0 else "top", fontsize=6)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xticks(b.cls)
        ax.set_xlabel("class (number: order learned)")
        ax.set_title(f"{name}: {f['depth']} hidden layers, init ×{f['init_scale']:g}")
    axes[0, 0].set_ylabel("last-layer bias")
    return save_figure(fig, path)


def plot_class_shares(shares: dict, summary, path, schemes=("all", "homogeneous")) -> list[Path]:
    """Share of examples predicted as each class along α for the featured net of each data set, one row per
    scheme; the vertical line is the error plateau end, the hatched class the argmax of the last-layer bias."""
    setup_style()
    names = list(dict.fromkeys(summary.dataset))
    fig, axes = plt.subplots(len(schemes), len(names), figsize=(COLUMN_WIDTH * len(names) / 1.4, 1.7 * len(schemes)),
                             squeeze=False, sharex=True, sharey=True)
    for j, name in enumerate(names):
        f = _featured(summary, name)
        if f is None:
            continue
        per = shares.get((name, f["depth"], f["init_scale"], True), {})
        row = _select(summary, name, f["depth"], f["init_scale"], True)
        for i, scheme in enumerate(schemes):
            ax = axes[i, j]
            if scheme not in per:
                continue
            sh = per[scheme]
            alphas = np.linspace(0, 1, sh.shape[0])
            polys = ax.stackplot(alphas, sh.T, colors=[CLASS_COLORS[c % 10] for c in range(sh.shape[1])], lw=0)
            r = row[row.scheme == scheme]
            top = int(r.bias_argmax_class.iloc[0]) if len(r) else -1
            if top >= 0:
                polys[top].set_hatch("////")
                polys[top].set_edgecolor("white")
            end = float(r.error_plateau_end.iloc[0]) if len(r) else math.nan
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
    files = plot_curves(curves, summary, out / "curves_by_scheme")
    files += plot_plateau_vs(summary, "depth", out / "plateau_vs_depth")
    files += plot_plateau_vs(summary, "init_scale", out / "plateau_vs_init_scale")
    files += plot_biases(biases, summary, out / "last_layer_biases")
    files += plot_class_shares(shares, summary, out / "class_shares")
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
    left) and against init scale (a line per r, right); error (measured from the first α > 0) on top, loss
    below."""
    setup_style()
    s = summary[summary.scheme == "all"]
    fig, axes = plt.subplots(2, 2, figsize=(COLUMN_WIDTH * 1.6, 3.4), sharey=True, sharex="col")
    for i, col in enumerate(("error_plateau_end_no_init", "loss_plateau_end")):
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
