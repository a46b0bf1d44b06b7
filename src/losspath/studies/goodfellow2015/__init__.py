"""Goodfellow, Vinyals & Saxe 2015, "Qualitatively characterizing neural network optimization problems" (ICLR).

Their two views of a training run: the loss along the straight line from the initial to the final parameters
(§3, the 1-D "linear path" experiment), and the 2-D view of the trajectory — the loss over the plane spanned by
the init → final direction and the direction in which SGD strays furthest from that line, with the SGD path
projected onto it. We draw the plane of `planes.trajectory_plane` (u: init → final; v: the first principal
component of the checkpoints' residuals from the line, orthonormal; coordinates in parameter-norm units), for
the default main-job networks of the Frankle 2020 study (replicate 0 of each setting: the same Hparams, so the
same run in the store — a finished Frankle run is reused, not retrained). BatchNorm statistics are re-estimated
at every grid point and α by default (interpolated statistics go negative over most of a BatchNorm net's plane).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import typer

from ...errors import LosspathError
from ...executors import make_executor
from ...jobs import stored_run, train_job
from ...metrics import is_monotone, lucas_delta, max_increase
from ...runtime import Runtime
from ..frankle2020 import DEFAULT_SETTINGS, SETTING_OPTION, SETTINGS, hparams_for
from ..harness import check_choice, echo_result, finish_study, gathered, study_app
from .figures import draw_all

BATCHNORM_MODES = ("recompute", "interpolate", "origin")
CAPTIONS = {
    "plane": "Test loss (left, log-spaced levels) and error (right) over the trajectory plane of {setting}: a along "
             "init → final, b along the first principal component of the checkpoints' residuals from that line "
             "(Goodfellow et al. 2015's 2-D view). The SGD path is the projection of every saved checkpoint.",
    "line": "Test loss (left) and error (right) along the straight line from the initial (α = 0) to the final "
            "(α = 1) network (Goodfellow et al. 2015, §3).",
}


def view_job(run_dir: str, options: dict, runtime) -> dict:
    """The trajectory plane of a stored run on a grid around its projected path: PlaneResult, the path's
    coordinates and distances off the plane, and the saved steps."""
    from ...planes import evaluate_plane, project, trajectory_plane
    from ...run_lines import run_line
    from ...training import model_for

    with stored_run(run_dir, runtime) as (run, data):
        steps = run.saved_steps()
        states = [run.load_checkpoint(s) for s in steps]
        plane = trajectory_plane(states, second=options["second"])
        coords, distances = project(plane, states)
        axes = [_axis(coords[:, i], options["margin"], options["points"]) for i in (0, 1)]
        recompute = options["batchnorm"] == "recompute"
        model = model_for(run.hparams, data)
        result = evaluate_plane(model, plane, data.split(options["split"]), grid=axes,
                                batchnorm=options["batchnorm"], train_data=data.train if recompute else None,
                                bn_batches=options["bn_batches"] if recompute else None,
                                device=runtime.device, progress=False)
        has_bn = any(k.endswith("running_var") for k in states[0])
        line_bn = {"origin": "start"}.get(options["batchnorm"], options["batchnorm"]) if has_bn else "interpolate"
        line = run_line(run, model, data, 0, "last", split=options["split"], points=options["line_points"],
                        batchnorm=line_bn, bn_batches=options["bn_batches"] if line_bn == "recompute" else None,
                        device=runtime.device)
    return dict(plane=result, coords=coords, distances=distances, steps=steps, line=line,
                batchnorm=options["batchnorm"] if has_bn else "none (no BatchNorm)")


def _axis(values: np.ndarray, margin: float, points: int) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    span = high - low if high > low else 1.0
    return np.linspace(low - margin * span, high + margin * span, points)


def run_study(settings=DEFAULT_SETTINGS, *, points: int = 21, line_points: int = 100, margin: float = 0.25,
              split: str = "test", batchnorm: str = "recompute", bn_batches: int = 4, second: str = "pca",
              out: str | Path = "results/goodfellow2015", steps: str | None = None,
              runtime: Runtime | None = None) -> dict:
    """Train (or reuse) replicate 0 of every setting, evaluate its trajectory plane on a points × points grid and
    the init → final line at `line_points` α, and write plane.csv, path.csv, line.csv, summary.csv and figures."""
    runtime, settings, out, started = (runtime or Runtime()).checked(), list(settings), Path(out), time.time()
    for name in settings:
        hparams_for(name, 0, steps).validate()
    if not 2 <= points <= 201 or line_points < 2:
        raise LosspathError("--points must be from 2 to 201 and --line-points at least 2.")
    if not (np.isfinite(margin) and margin >= 0) or bn_batches < 1:
        raise LosspathError("--margin must be at least 0 and --bn-batches at least 1.")
    check_choice(split, ("train", "test"), "split")
    check_choice(batchnorm, BATCHNORM_MODES, "BatchNorm mode")
    check_choice(second, ("pca", "max_residual"), "second direction")
    view_options = dict(points=points, line_points=line_points, margin=margin, split=split, batchnorm=batchnorm,
                        bn_batches=bn_batches, second=second)

    with make_executor(runtime, 2 * len(settings)) as ex:
        runs = {name: ex.submit(train_job, hparams_for(name, 0, steps), runtime) for name in settings}
        views = {name: ex.submit(view_job, runs[name], view_options, runtime) for name in settings}
        run_dirs, views = gathered(ex, runs, "training"), gathered(ex, views, "planes")

    tables = _tables(run_dirs, views, split)
    return finish_study(out, study="goodfellow2015", tables=tables, figures=draw_all(tables, out), text=describe(tables),
                        runtime=runtime, started=started,
                        options=dict(points=points, line_points=line_points, margin=margin, split=split,
                                     batchnorm=batchnorm, bn_batches=bn_batches, second=second, steps=steps),
                        settings={n: dict(dataset=SETTINGS[n].dataset, model=SETTINGS[n].model, **SETTINGS[n].train)
                                  for n in settings},
                        captions={**{f"plane_{n}": CAPTIONS["plane"].format(setting=n) for n in settings},
                                  "line": CAPTIONS["line"]})


def _tables(run_dirs: dict, views: dict, split: str) -> dict:
    """plane (one row per grid point), path (one row per checkpoint), line (one row per α), summary."""
    planes, paths, curves, summary = [], [], [], []
    for name, view in views.items():
        result, coords, distances = view["plane"], view["coords"], view["distances"]
        planes.append(result.to_frame().assign(setting=name, split=split))
        paths.append(pd.DataFrame(dict(setting=name, step=view["steps"], a=coords[:, 0], b=coords[:, 1],
                                       distance=distances)))
        line = view["line"]
        curves.append(pd.DataFrame(dict(setting=name, alpha=line.alphas, split=split, loss=line.loss,
                                        error=line.error, undefined=line.undefined)))
        summary.append(dict(setting=name, run=run_dirs[name], batchnorm=view["batchnorm"],
                            **_summary(result, coords, distances, line)))
    order = ["setting", "a", "b", "split", "loss", "error", "undefined", "undefined_reason"]
    plane = pd.concat(planes, ignore_index=True)
    return dict(plane=plane[order + [c for c in plane.columns if c not in order]],
                path=pd.concat(paths, ignore_index=True), line=pd.concat(curves, ignore_index=True),
                summary=pd.DataFrame(summary))


def _summary(result, coords, distances, line) -> dict:
    """What the figures show, in numbers: how much of the trajectory the plane holds, how far SGD strays from
    the straight line, the line's shape and where the plane's lowest loss is."""
    squared = float((coords**2).sum())
    defined = np.where(result.undefined, np.inf, result.loss)
    i, j = np.unravel_index(np.argmin(defined), defined.shape)
    final_a = float(coords[-1, 0])
    return dict(checkpoints=len(coords), init_final_distance=final_a,
                plane_share=squared / (squared + float((distances**2).sum())),
                max_off_plane=float(distances.max()), max_excursion=float(np.abs(coords[:, 1]).max()),
                excursion_at_a=float(coords[np.argmax(np.abs(coords[:, 1])), 0]),
                line_monotone=bool(is_monotone(line.loss)), line_max_loss_increase=max_increase(line.loss),
                line_lucas_delta=lucas_delta(line.loss), line_min_loss=float(np.nanmin(line.loss)),
                line_min_alpha=float(line.alphas[np.nanargmin(line.loss)]),
                line_loss_init=float(line.loss[0]), line_loss_final=float(line.loss[-1]),
                line_error_final=float(line.error[-1]), plane_min_loss=float(result.loss[i, j]),
                plane_min_a=float(result.a_values[i]), plane_min_b=float(result.b_values[j]),
                undefined_points=int(result.undefined.sum()), grid_points=int(result.undefined.size))


def describe(tables: dict) -> str:
    out = []
    for row in tables["summary"].itertuples():
        out.append(f"{row.setting}: {row.checkpoints} checkpoints; init → final distance {row.init_final_distance:.3g}")
        out.append(f"  the plane holds {row.plane_share:.1%} of the checkpoints' squared displacement from init "
                   f"(farthest checkpoint {row.max_off_plane:.3g} off it); SGD strays up to "
                   f"|b| = {row.max_excursion:.3g} from the straight line (at a = {row.excursion_at_a:.3g})")
        if row.line_monotone:
            shape = f"decreases monotonically, {row.line_loss_init:.3g} → {row.line_loss_final:.3g}"
        else:
            shape = (f"is not monotone: {row.line_loss_init:.3g} → minimum {row.line_min_loss:.3g} at α = "
                     f"{row.line_min_alpha:.2f} → {row.line_loss_final:.3g} (largest rise {row.line_lucas_delta:.3g}; "
                     f"max increase over init {row.line_max_loss_increase:.3g})")
        out.append(f"  along the straight line init → final the loss {shape}; final error {row.line_error_final:.3f}")
        out.append(f"  lowest loss on the plane's grid {row.plane_min_loss:.3g} at (a, b) = ({row.plane_min_a:.3g}, "
                   f"{row.plane_min_b:.3g}); {row.undefined_points} of {row.grid_points} grid points undefined")
    return "\n".join(out)


def cli(
    setting: list[str] = SETTING_OPTION,
    points: int = typer.Option(21, "--points", help="Grid points per axis of the plane."),
    line_points: int = typer.Option(100, "--line-points", help="Evenly spaced α of the init → final line."),
    margin: float = typer.Option(0.25, "--margin", help="Grid margin beyond the path, as a fraction of its span."),
    split: str = typer.Option("test", "--split", help="test or train."),
    batchnorm: str = typer.Option("recompute", "--batchnorm", help="recompute (default), interpolate or origin."),
    bn_batches: int = typer.Option(4, "--bn-batches", help="Training batches of 128 per recomputed point."),
    second: str = typer.Option("pca", "--second", help="The plane's second direction: pca (first principal "
                               "component of the residuals) or max_residual (the largest residual)."),
    steps: Optional[str] = typer.Option(None, "--steps", help="Override every setting's training length."),
    out: Path = typer.Option(Path("results/goodfellow2015"), "--out", help="Output directory."),
    runtime: Runtime = None,
):
    """Goodfellow et al. 2015: the init → final line and the loss over the SGD trajectory's plane.

    \b
    Examples:
      losspath reproduce goodfellow2015
      losspath reproduce goodfellow2015 --setting mnist5k-lenet_300_100 --points 41
    """
    result = run_study(setting, points=points, line_points=line_points, margin=margin, split=split,
                       batchnorm=batchnorm, bn_batches=bn_batches, second=second, steps=steps, out=out,
                       runtime=runtime)
    echo_result(result, out, "plane.csv, path.csv, line.csv, summary.csv")


app = study_app(cli)
