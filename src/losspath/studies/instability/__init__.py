"""Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis":
the instability analysis (their Figs. 2-3).

For each setting and replicate: train the parent run; for every spawn step k ∈ {0} ∪ {b^j < T} spawn two
copies from the parent's checkpoint at k that finish training with different data orders
(losspath.siblings.child_hparams), evaluate the line between the two ends on the test and the training set,
and report the paper's error barrier height (max error along the line minus the mean of the two ends'
errors, metrics.barrier_height) beside the chord barrier (metrics.barrier). The network is *stable* from the
first k from which the mean barrier height stays below the threshold (2%, as in the paper).
The recipe: Hparams → siblings.child_hparams → executor (jobs.train_job, jobs.line_job) →
metrics → figures → report.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import pandas as pd
import typer

from ...errors import LosspathError
from ...lines.schemes import BATCHNORM_MODES
from ...metrics import barrier, barrier_height
from ...siblings import child_hparams
from ...store import Run
from ...executors import make_executor
from ...jobs import cached_dataset, line_job, train_job
from ...runtime import Runtime
from ...training import plan_run
from .figures import draw_all
from ..harness import check_choice, echo_result, finish_study, gathered, study_app
from ..frankle2020 import DEFAULT_SETTINGS, SETTING_OPTION, SETTINGS, hparams_for

THRESHOLD = 0.02  # Frankle et al. 2020: stable when the error barrier height is below 2%
CHILD_SEED = 1000  # copy c of replicate r trains with data-order seed CHILD_SEED + 2r + c
SPLITS = ("test", "train")
CAPTIONS = {
    "instability_vs_k": "Error barrier height (Frankle et al. 2020: max error along the line minus the mean of "
                        "the two ends) between two copies spawned at iteration k and trained to the end with "
                        "different data orders, against k (log scale, 0 at the left); solid: test, dotted: "
                        "chord barrier; mean ± one standard deviation over replicates; grey line: the 2% "
                        "threshold.",
    "instability_lines": "Test error along the line between the two copies' ends, one curve per spawn step k "
                         "(colour), mean over replicates; one panel per setting.",
}


def spawn_steps(last: int, base: int) -> list[int]:
    """k ∈ {0} ∪ {base^j | base^j < last}: 0 and the powers of `base` below the last iteration."""
    if base < 2:
        raise LosspathError(f"--k-base must be at least 2, not {base}.")
    ks, k = [0], 1
    while k < last:
        ks.append(k)
        k *= base
    return ks


def run_study(settings=DEFAULT_SETTINGS, *, replicates: int = 2, points: int = 11, k_base: int = 4,
              splits=SPLITS, batchnorm: str = "interpolate", threshold: float = THRESHOLD,
              out: str | Path = "results/instability", steps: str | None = None, bias_init: str | None = None,
              runtime: Runtime | None = None) -> dict:
    """Run (or reuse) every run and line of the study; write runs.csv, curves.csv, summary.csv,
    stability.csv, the figures and the report. Returns the tables, the figure paths and the printed text."""
    runtime, out, started = (runtime or Runtime()).checked(), Path(out), time.time()
    settings, splits = list(settings), list(splits)
    for name in settings:
        hparams_for(name, 0, steps, bias_init).validate()
    if replicates < 1 or points < 3:
        raise LosspathError("--replicates must be at least 1 and --points at least 3.")
    if not splits or any(s not in SPLITS for s in splits):
        raise LosspathError(f"--split must be test or train, not {', '.join(map(str, splits)) or 'nothing'}.")
    check_choice(batchnorm, BATCHNORM_MODES, "BatchNorm mode")
    if not 0 < threshold < 1:
        raise LosspathError(f"--threshold must lie in (0, 1), not {threshold}.")
    options = dict(points=points, batchnorm=batchnorm)

    # the two copies of every parent spawned at every k, checked before any work
    parents, copies, lines, spawn, children = {}, {}, {}, {}, {}
    hps = {(name, r): hparams_for(name, r, steps, bias_init) for name in settings for r in range(replicates)}
    for (name, r), hp in hps.items():
        plan = plan_run(hp, len(cached_dataset(hp.dataset, runtime.data_root).train))
        spawn[name] = spawn_steps(plan["last_step"], k_base)
        for k in spawn[name]:
            children[name, r, k] = [child_hparams(hp, k, CHILD_SEED + 2 * r + c, plan["iterations_per_epoch"])
                                    .validate() for c in (0, 1)]
    with make_executor(runtime, len(hps) + 3 * len(children)) as ex:
        for (name, r), hp in hps.items():
            parents[name, r] = ex.submit(train_job, hp, runtime)
            for k in spawn[name]:
                pair = [ex.submit(train_job, child, runtime, parents[name, r]) for child in children[name, r, k]]
                copies[name, r, k] = pair
                for split in splits:
                    lines[name, r, k, split] = ex.submit(line_job, pair[0], "last", "last",
                                                         dict(options, split=split), runtime, pair[1])
        parent_dirs = gathered(ex, parents, "parents")
        flat = [t for pair in copies.values() for t in pair]
        done = ex.gather(flat, "copies")
        copy_dirs = {key: (done[2 * i], done[2 * i + 1]) for i, key in enumerate(copies)}
        results = gathered(ex, lines, "lines")

    tables = _tables(parent_dirs, copy_dirs, results)
    tables["stability"] = stability(tables["summary"], threshold)
    return finish_study(out, study="instability", tables=tables,
                        figures=draw_all(tables, out, threshold),
                        text=describe(tables, threshold), runtime=runtime, started=started,
                        options=dict(replicates=replicates, points=points, k_base=k_base, splits=splits,
                                     batchnorm=batchnorm, threshold=threshold, steps=steps, bias_init=bias_init),
                        settings={n: dict(dataset=SETTINGS[n].dataset, model=SETTINGS[n].model, **SETTINGS[n].train,
                                          spawn_steps=spawn[n]) for n in settings},
                        captions=CAPTIONS, summary_keys=["setting", "k", "split"])


def _tables(parent_dirs: dict, copy_dirs: dict, results: dict) -> dict:
    runs = []
    for (name, r), d in parent_dirs.items():
        runs.append(_run_row(name, r, None, "parent", d))
    for (name, r, k), (a, b) in copy_dirs.items():
        runs += [_run_row(name, r, k, "copy 1", a), _run_row(name, r, k, "copy 2", b)]
    curves, summary = [], []
    for (name, r, k, split), line in results.items():
        curves.append(pd.DataFrame(dict(setting=name, replicate=r, k=k, split=split, alpha=line.alphas,
                                        loss=line.loss, error=line.error)))
        summary.append(dict(setting=name, replicate=r, k=k, split=split,
                            error_barrier_height=barrier_height(line.error),
                            error_barrier=barrier(line.alphas, line.error),
                            loss_barrier_height=barrier_height(line.loss), loss_barrier=barrier(line.alphas, line.loss),
                            error_copy1=line.error[0], error_copy2=line.error[-1], distance=line.distance))
    return dict(runs=pd.DataFrame(runs), curves=pd.concat(curves, ignore_index=True), summary=pd.DataFrame(summary))


def _run_row(name, r, k, role, run_dir) -> dict:
    done = Run.open(run_dir).done()
    return dict(setting=name, replicate=r, k=k, role=role, run=run_dir, test_loss=done["test_loss"],
                test_error=done["test_error"], last_step=done["last_step"], train_seconds=done.get("wall_seconds"))


def stability(summary: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Mean and std over replicates of both barriers per setting × split × k, and whether the network is
    stable from that k on (the mean error barrier height below `threshold` at k and every later k)."""
    g = summary.groupby(["setting", "split", "k"], sort=False)
    std = lambda v: v.std(ddof=0)  # noqa: E731 (over replicates, as numpy)
    table = g.agg(height_mean=("error_barrier_height", "mean"), height_std=("error_barrier_height", std),
                  chord_mean=("error_barrier", "mean"), chord_std=("error_barrier", lambda v: v.std(ddof=0)),
                  replicates=("replicate", "nunique")).reset_index()
    order = {v: i for column in ("setting", "split") for i, v in enumerate(dict.fromkeys(summary[column]))}
    table = table.sort_values(["setting", "split", "k"], key=lambda c: c.map(order) if c.name != "k" else c,
                              kind="stable")
    table["stable_from_here"] = False
    for _, idx in table.groupby(["setting", "split"], sort=False).groups.items():
        below = (table.loc[idx, "height_mean"] < threshold).to_numpy()
        table.loc[idx, "stable_from_here"] = [bool(below[i:].all()) for i in range(len(below))]
    return table.reset_index(drop=True)


def stable_from(table: pd.DataFrame, setting: str, split: str):
    """The first k from which the network is stable, or None if it is not stable at the last k."""
    rows = table[(table.setting == setting) & (table.split == split) & table.stable_from_here]
    return None if rows.empty else int(rows.k.min())


def describe(tables: dict, threshold: float = THRESHOLD) -> str:
    runs, table = tables["runs"], tables["stability"]
    lines = []
    for name in dict.fromkeys(table.setting):
        parents = runs[(runs.setting == name) & (runs.role == "parent")]
        copies = runs[(runs.setting == name) & (runs.role != "parent")]
        lines.append(f"{name}: parent test error {parents.test_error.mean():.3f} ± "
                     f"{parents.test_error.std(ddof=0):.3f}, "
                     f"copies {copies.test_error.mean():.3f} ({len(parents)} replicates, "
                     f"{int(parents.last_step.iloc[0])} iterations)")
        for split in dict.fromkeys(table[table.setting == name].split):
            per = table[(table.setting == name) & (table.split == split)]
            values = ", ".join(f"{int(k)}: {m:.3f}±{s:.3f}" for k, m, s in zip(per.k, per.height_mean, per.height_std))
            k = stable_from(table, name, split)
            verdict = ("stable from k = 0 (already at initialization)" if k == 0 else
                       f"stable from k = {k}" if k is not None else "not stable at any k of the schedule")
            lines.append(f"  {split} error barrier height by k: {values}")
            lines.append(f"  {split}: {verdict} (mean height < {threshold:.0%}); largest chord barrier "
                         f"{per.chord_mean.max():.3f} at k = {int(per.k.iloc[per.chord_mean.argmax()])}")
            curves = tables["curves"]
            errors = curves[(curves.setting == name) & (curves.split == split)].error
            if len(errors) and float(errors.max()) == 0.0:
                lines.append(f"  note: the {split} error is 0 at every point of every line (the network fits the "
                             f"{split} set), so the {split} set cannot show a barrier here")
    lines.append("(Frankle et al. 2020: LeNet on MNIST is stable from initialization; their CIFAR-10 and ImageNet "
                 "networks become stable only after a short period of training.)")
    return "\n".join(lines)


def cli(
    setting: list[str] = SETTING_OPTION,
    replicates: int = typer.Option(2, "--replicates", "-r", help="Replicates per setting (parent seeds 0..R-1)."),
    points: int = typer.Option(11, "--points", help="Evenly spaced α in [0, 1] per line (11: α step 0.1)."),
    k_base: int = typer.Option(4, "--k-base", help="Spawn steps k = 0 and b^j below the end (2: the paper's 2^j)."),
    split: list[str] = typer.Option(list(SPLITS), "--split", help="Repeatable: test, train."),
    batchnorm: str = typer.Option("interpolate", "--batchnorm", help="interpolate, recompute, start or end."),
    threshold: float = typer.Option(THRESHOLD, "--threshold",
                                    help="Stable when the mean barrier height is below this."),
    steps: Optional[str] = typer.Option(None, "--steps", help="Override every setting's training length."),
    bias_init: Optional[str] = typer.Option(None, "--bias-init", help="Override every setting's bias init."),
    out: Path = typer.Option(Path("results/instability"), "--out", help="Output directory."),
    runtime: Runtime = None,
):
    """Frankle et al. 2020 (linear mode connectivity): the error barrier between two copies spawned at step k.

    \b
    Examples:
      losspath reproduce instability --threads 1
      losspath reproduce instability --k-base 2 --points 30 --replicates 3     # k = 0 and every 2^j
      losspath reproduce instability --setting cifar10-resnet_20 --data-root ~/data
    """
    result = run_study(setting, replicates=replicates, points=points, k_base=k_base, splits=split,
                       batchnorm=batchnorm, threshold=threshold, out=out, steps=steps, bias_init=bias_init, runtime=runtime)
    echo_result(result, out, "runs.csv, curves.csv, summary.csv, stability.csv")


app = study_app(cli)
