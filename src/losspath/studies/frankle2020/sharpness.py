"""`--sharpness` of the Frankle study: the top Hessian eigenvalue of the training loss (losspath.curvature) at
each line's start θ_t (a column of summary.csv) and along the init → final line (sharpness.csv and a figure).

The loss is the mean cross-entropy on the first EXAMPLES training examples (a fixed subset, the same for every
point); BatchNorm in eval mode at the point's statistics (the line's BatchNorm mode: interpolated, held, or
recomputed from the training split). Lanczos stops at a relative residual of TOL or after ITERATIONS
Hessian-vector products, from a seeded start vector (curvature.sharpness).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...jobs import stored_run

EXAMPLES, TOL, ITERATIONS, LINE_POINTS = 500, 1e-2, 30, 11
OPTIONS = dict(examples=EXAMPLES, tol=TOL, iterations=ITERATIONS)
CAPTION = (f"Sharpness (top eigenvalue of the Hessian of the training loss on {EXAMPLES} training examples) "
           f"along the straight line from the network at iteration 0 (α = 0) to the trained network (α = 1); "
           f"mean ± one standard deviation over replicates.")


def sharpness_at_step(run_dir: str, step: int, runtime) -> float:
    """λ_max of the training loss at checkpoint `step` of a stored run."""
    from ...curvature import sharpness
    from ...training import model_for

    with stored_run(run_dir, runtime) as (run, data):
        return sharpness(model_for(run.hparams, data), run.load_checkpoint(step), data.train,
                         device=runtime.device, **OPTIONS)


def sharpness_from_init(run_dir: str, batchnorm: str, runtime) -> pd.DataFrame:
    """λ_max at LINE_POINTS evenly spaced α of the line from iteration 0 to the last checkpoint."""
    from ...curvature import sharpness_along_line
    from ...training import model_for

    with stored_run(run_dir, runtime) as (run, data):
        has_bn = any(k.endswith("running_var") for k in run.load_checkpoint(0))
        mode = batchnorm if has_bn else "interpolate"
        return sharpness_along_line(model_for(run.hparams, data), run.load_checkpoint(0),
                                    run.load_checkpoint(run.saved_steps()[-1]), data.train, points=LINE_POINTS,
                                    batchnorm=mode, train_data=data.train if mode == "recompute" else None,
                                    progress=False, device=runtime.device, **OPTIONS)


def with_sharpness(ex, tables: dict, runs: dict, lines: dict, batchnorm: str, runtime) -> dict:
    """`tables` with the sharpness added: a job per line start (its checkpoint) and per run (the init → final
    line), submitted to executor `ex`; `runs` and `lines` are the study's job dicts."""
    from ..harness import gathered

    at_steps = {(name, r, t): ex.submit(sharpness_at_step, runs[name, r], t, runtime) for name, r, t in lines}
    along = {key: ex.submit(sharpness_from_init, run, batchnorm, runtime) for key, run in runs.items()}
    return add_to_tables(tables, gathered(ex, at_steps, "sharpness"), gathered(ex, along, "sharpness"))


def add_to_tables(tables: dict, at_steps: dict, along: dict) -> dict:
    """summary.csv gains `sharpness_start` (λ_max at θ_t); sharpness.csv holds the init → final curves."""
    summary = tables["summary"]
    summary["sharpness_start"] = [at_steps[(row.setting, row.replicate, row.start_step)]
                                  for row in summary.itertuples()]
    frames = [frame.assign(setting=name, replicate=r) for (name, r), frame in along.items()]
    curves = pd.concat(frames, ignore_index=True)
    return dict(tables, sharpness=curves[["setting", "replicate", "alpha", "sharpness", "residual", "iterations"]])


def figure(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Sharpness along the init → final line, mean ± std over replicates, one curve per setting."""
    import matplotlib.pyplot as plt

    from ...plots.common import COLUMN_WIDTH, PALETTE, save_figure, setup_style

    setup_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4), layout="constrained")
    for i, (name, per) in enumerate(curves.groupby("setting", sort=False)):
        g = per.groupby("alpha").sharpness
        mean, std = g.mean(), g.std(ddof=0).fillna(0)
        ax.plot(mean.index, mean, color=PALETTE[i % len(PALETTE)], marker="o", ms=2.5, lw=1.2, label=name)
        ax.fill_between(mean.index, mean - std, mean + std, color=PALETTE[i % len(PALETTE)], alpha=0.25, lw=0)
    positive = curves.sharpness[np.isfinite(curves.sharpness) & (curves.sharpness > 0)]
    if len(positive) and positive.max() / positive.min() > 20:
        ax.set_yscale("log")
    ax.set_xlabel("α  (0: iteration 0, 1: last iteration)")
    ax.set_ylabel("sharpness λ_max (training loss)")
    ax.legend(frameon=False)
    return save_figure(fig, out / "sharpness_from_init")
