"""Frankle 2020, "Revisiting 'Qualitatively characterizing neural network optimization problems'".

For each setting and replicate: train with checkpoints at t ∈ {0} ∪ {2^k | k ≤ 10} ∪ {1000k | k > 1} (§2),
evaluate the line θ(α) = (1−α)·θ_t + α·θ_last at 100 evenly spaced α on the test set for every saved t,
and summarise each line by its maximum increase in loss and error (Fig. 3) and the other curve metrics.
The recipe composes the library: Hparams → training.train → lines.run_line → metrics → plots.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import typer

from ...errors import LosspathError
from ...hparams import Hparams, paper_defaults
from ...lines.schemes import BATCHNORM_MODES
from ...store import Run
from ...executors import make_executor
from ...jobs import cached_dataset, line_job, train_job
from ...runtime import Runtime
from ...training import plan_run
from .figures import draw_all
from .sharpness import CAPTION as SHARPNESS_CAPTION, figure as sharpness_figure, with_sharpness
from ..harness import check_choice, echo_result, finish_study, gathered, study_app


@dataclass(frozen=True)
class Setting:
    """A network on a data set with its training hyperparameters."""

    dataset: str
    model: str
    train: dict = field(default_factory=dict)
    note: str = ""


def _openlth(model: str) -> dict:
    return dict(paper_defaults(model), bias_init="uniform")


SETTINGS: dict[str, Setting] = {
    # Embedded settings: real data that ships with pip packages, sized to run here in minutes.
    "mnist5k-lenet_300_100": Setting("mnist5k", "lenet_300_100", _openlth("lenet_300_100"),
                                     "Frankle 2020's MNIST setting (OpenLTH's LeNet-300-100 recipe and init) on "
                                     "5,000 real MNIST digits (the easy, MNIST case)"),
    "mnist1d-mlp": Setting("mnist1d", "lenet_300_100", dict(lr=0.1, batch_size=128, steps="40ep"),
                           "LeNet-300-100 shape with OpenLTH's LeNet hyperparameters (the easy, MNIST-like case)"),
    "mnist1d-resnet": Setting("mnist1d", "resnet1d_14_8", dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128,
                                                             steps="16ep", milestones="8ep,12ep"),
                              "1-D ResNet with BatchNorm, CIFAR-ResNet recipe scaled down (the harder, CIFAR-like case)"),
    "digits-mlp": Setting("digits", "lenet_300_100", dict(lr=0.1, batch_size=128, steps="40ep"),
                          "LeNet-300-100 on scikit-learn's 8×8 digits"),
    "digits-convnet": Setting("digits", "convnet6", dict(lr=0.05, momentum=0.9, batch_size=128, steps="40ep"),
                              "6-layer convnet on scikit-learn's 8×8 digits"),
    # The paper's settings (OpenLTH hyperparameters, and its init: torch's default biases); they need the user's
    # data files under --data-root.
    "mnist-lenet_300_100": Setting("mnist", "lenet_300_100", _openlth("lenet_300_100"), "Frankle 2020, MNIST"),
    "cifar10-vgg_16": Setting("cifar10", "cifar_vgg_16", _openlth("cifar_vgg_16"), "Frankle 2020, CIFAR-10"),
    "cifar10-resnet_20": Setting("cifar10", "cifar_resnet_20", _openlth("cifar_resnet_20"), "Frankle 2020, CIFAR-10"),
    "imagenet-resnet_50": Setting("imagenet", "imagenet_resnet_50", _openlth("imagenet_resnet_50"),
                                  "Frankle 2020, ImageNet"),
}
DEFAULT_SETTINGS = ("mnist5k-lenet_300_100", "mnist1d-resnet")
CAPTIONS = {
    "fig1_from_init": "Loss (left) and error (right) along the straight line from the network at iteration 0 "
                      "(α = 0) to the trained network (α = 1); mean ± one standard deviation over replicates "
                      "(Frankle 2020, Fig. 1).",
    "fig2_from_t": "Loss and error along the line from the network at iteration t (colour, log scale; dashed: "
                   "t = 0) to the trained network, one row per setting (Frankle 2020, Fig. 2).",
    "fig3_max_increase": "Maximum increase in loss (top) and error (bottom) along the line from iteration t to "
                         "the trained network, against t; mean ± one standard deviation over replicates "
                         "(Frankle 2020, Fig. 3).",
}
# --setting, shared by the studies that run Frankle's settings
SETTING_OPTION = typer.Option(list(DEFAULT_SETTINGS), "--setting", "-s",
                              help=f"Repeatable. Known: {', '.join(SETTINGS)}.")
BARRIER_TOL = 0.01  # a line "has a barrier" when its mean max loss increase exceeds this (nats)


def hparams_for(name: str, replicate: int, steps: str | None = None, bias_init: str | None = None) -> Hparams:
    """The hyperparameters of replicate `replicate` (its init and data-order seed) of setting `name`; `steps`
    and `bias_init` override the setting's own when given."""
    if name not in SETTINGS:
        raise LosspathError(f"Unknown setting {name!r}; known settings: {', '.join(SETTINGS)}.")
    s = SETTINGS[name]
    given = dict(steps=steps, bias_init=bias_init)
    overrides = dict(s.train, **{k: v for k, v in given.items() if v})
    return Hparams(dataset=s.dataset, model=s.model, seed=replicate, **overrides)


def run_study(settings=DEFAULT_SETTINGS, *, replicates: int = 3, points: int = 100, split: str = "test",
              batchnorm: str = "interpolate", out: str | Path = "results/frankle2020", steps: str | None = None,
              bias_init: str | None = None, runtime: Runtime | None = None, sharpness: bool = False) -> dict:
    """Run (or reuse) every part of the study and write curves.csv, summary.csv, runs.csv and the figures.

    `steps` overrides every setting's training length (for quick checks), `bias_init` its bias init ("zero"
    for the embedded settings, OpenLTH's "uniform" for the paper's). The jobs (a training run per
    setting × replicate, a line per saved start step) go to the runtime's executor (losspath.executors).
    Returns the three tables (pandas) and the figure paths. `sharpness`: also the top Hessian eigenvalue of
    the training loss at every line's start and along the init → final line (frankle2020.sharpness).
    """
    runtime, settings, out, started = (runtime or Runtime()).checked(), list(settings), Path(out), time.time()
    for name in settings:
        hparams_for(name, 0, steps, bias_init).validate()
    if replicates < 1 or points < 2:
        raise LosspathError("--replicates must be at least 1 and --points at least 2.")
    check_choice(split, ("train", "test"), "split")
    check_choice(batchnorm, BATCHNORM_MODES, "BatchNorm mode")
    options = dict(split=split, points=points, batchnorm=batchnorm)

    # the job graph: train every run, then a line from each saved step below the last (Frankle 2020 §2)
    hparams = {(name, r): hparams_for(name, r, steps, bias_init) for name in settings for r in range(replicates)}
    plans = {key: plan_run(hp, len(cached_dataset(hp.dataset, runtime.data_root).train)) for key, hp in hparams.items()}
    runs, lines = {}, {}
    with make_executor(runtime, sum(len(p["schedule"]) for p in plans.values())) as ex:
        for (name, r), plan in plans.items():
            runs[name, r] = ex.submit(train_job, hparams[name, r], runtime)
            for t in plan["schedule"][:-1]:
                lines[name, r, t] = ex.submit(line_job, runs[name, r], t, plan["last_step"], options, runtime)
        tables = _tables(gathered(ex, runs, "training"), gathered(ex, lines, "lines"), split)
        if sharpness:
            tables = with_sharpness(ex, tables, runs, lines, batchnorm, runtime)
    figures = draw_all(tables, out) + (sharpness_figure(tables["sharpness"], out) if sharpness else [])
    return finish_study(out, study="frankle2020", tables=tables, figures=figures,
                        text=describe(tables, barrier_tol=BARRIER_TOL), runtime=runtime, started=started,
                        options=dict(replicates=replicates, points=points, split=split, batchnorm=batchnorm,
                                     steps=steps, bias_init=bias_init, sharpness=sharpness),
                        settings={n: dict(dataset=SETTINGS[n].dataset, model=SETTINGS[n].model, **SETTINGS[n].train)
                                  for n in settings}, captions=dict(CAPTIONS, **({"sharpness_from_init": SHARPNESS_CAPTION} if sharpness else {})))


def _tables(run_dirs: dict, results: dict, split: str) -> dict:
    """curves (one row per line × α), summary (one row per line) and runs (one row per run)."""
    runs = []
    for (name, r), run_dir in run_dirs.items():
        done = Run.open(run_dir).done()
        runs.append(dict(setting=name, replicate=r, run=run_dir, test_loss=done["test_loss"],
                         test_error=done["test_error"], last_step=done["last_step"],
                         train_seconds=done.get("wall_seconds")))
    curves, summary = [], []
    for (name, r, t), line in results.items():
        curves.append(pd.DataFrame(dict(setting=name, replicate=r, start_step=t, alpha=line.alphas, split=split,
                                        loss=line.loss, error=line.error, undefined=line.undefined,
                                        undefined_reason=line.undefined_reason)))
        summary.append(dict(setting=name, replicate=r, start_step=t, split=split, **line_summary(line)))
    return dict(curves=pd.concat(curves, ignore_index=True), summary=pd.DataFrame(summary), runs=pd.DataFrame(runs))


# summary.csv's column → the LineResult.summary() key it reports (Frankle 2020 Fig. 3's max increases first)
SUMMARY_COLUMNS = dict(max_loss_increase="loss_max_increase", max_error_increase="error_max_increase",
                       barrier="loss_barrier", error_barrier="error_barrier", lucas_delta="loss_lucas_delta",
                       plateau_end="loss_plateau_end", error_plateau_end="error_plateau_end",
                       monotone="loss_monotone", undefined_points="undefined_points", distance="distance")


def line_summary(line) -> dict:
    """The per-line numbers of summary.csv: `LineResult.summary()` under the study's column names."""
    summary = line.summary()
    return {column: summary[key] for column, key in SUMMARY_COLUMNS.items()}


def describe(tables: dict, barrier_tol: float = BARRIER_TOL) -> str:
    """The printed summary: per setting, final test error, the shape of the init path, barrier onset/end."""
    lines = []
    summary, runs = tables["summary"], tables["runs"]
    for name, per_setting in summary.groupby("setting", sort=False):
        r = runs[runs.setting == name]
        init = per_setting[per_setting.start_step == 0]
        mean_inc = per_setting.groupby("start_step").max_loss_increase.mean()
        with_barrier = [int(t) for t, v in mean_inc.items() if v > barrier_tol]
        lines.append(f"{name}: final test error {r.test_error.mean():.3f} ± {r.test_error.std(ddof=0):.3f} "
                     f"({len(r)} replicates, {int(r.last_step.iloc[0])} iterations)")
        lines.append(f"  from init: loss monotone in {int(init.monotone.sum())}/{len(init)} replicates, "
                     f"max loss increase {init.max_loss_increase.mean():.3g}, largest bump (Lucas Δ) "
                     f"{init.lucas_delta.mean():.3g}, loss plateau ends at α ≈ "
                     f"{init.plateau_end.mean():.2f}, error plateau ends at α ≈ {init.error_plateau_end.mean():.2f}")
        if with_barrier:
            lines.append(f"  barrier (mean max loss increase > {barrier_tol}) from t = {with_barrier[0]} "
                         f"to t = {with_barrier[-1]}; largest {mean_inc.max():.3g} at t = {int(mean_inc.idxmax())}")
        else:
            lines.append(f"  no barrier: mean max loss increase ≤ {barrier_tol} from every t "
                         f"(largest {mean_inc.max():.3g} at t = {int(mean_inc.idxmax())})")
    return "\n".join(lines)


def cli(
    setting: list[str] = SETTING_OPTION,
    replicates: int = typer.Option(3, "--replicates", "-r", help="Replicates per setting (seeds 0..R-1)."),
    points: int = typer.Option(100, "--points", help="Evenly spaced α in [0, 1] per line."),
    split: str = typer.Option("test", "--split", help="test (the paper's choice) or train."),
    batchnorm: str = typer.Option("interpolate", "--batchnorm", help="interpolate, recompute, start or end."),
    steps: Optional[str] = typer.Option(None, "--steps", help="Override every setting's training length."),
    bias_init: Optional[str] = typer.Option(None, "--bias-init", help="Override every setting's bias init: zero "
                                            "(embedded settings) or uniform (OpenLTH's, the paper settings)."),
    out: Path = typer.Option(Path("results/frankle2020"), "--out", help="Output directory."),
    sharpness: bool = typer.Option(False, "--sharpness", help="Also the sharpness (top Hessian eigenvalue of the "
                                   "training loss): at each line's start (summary.csv) and along init → final."),
    runtime: Runtime = None,
):
    """Frankle 2020, Figures 1-3: lines from every checkpoint t to the last one, 3 replicates.

    \b
    Examples:
      losspath reproduce frankle2020
      losspath reproduce frankle2020 --setting cifar10-resnet_20 --data-root ~/data --batchnorm recompute
      losspath reproduce frankle2020 --executor dask --scheduler tcp://10.0.0.5:8786
    """
    result = run_study(setting, replicates=replicates, points=points, split=split, batchnorm=batchnorm, out=out,
                       steps=steps, bias_init=bias_init, runtime=runtime, sharpness=sharpness)
    echo_result(result, out, "curves.csv, summary.csv, runs.csv" + (", sharpness.csv" if sharpness else ""))


app = study_app(cli)
