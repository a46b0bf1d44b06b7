"""Git Re-Basin (Ainsworth, Hayase & Srinivasa 2023, Fig. 2 and the width plot) with REPAIR's BatchNorm point
(Jordan, Sedghi, Saukh, Entezari & Neyshabur 2023).

For each setting (a network family on embedded data), width and pair of seeds: train two replicates from
different seeds (init and data order), then evaluate the line from A to B three ways — naive, B permuted by
weight matching, B permuted by activation matching (losspath.align) — and, for networks with BatchNorm, both
with interpolated running statistics and with statistics recomputed at every point on the training set.
Report the loss and error barrier heights (max along the line minus the mean of the ends, the definition
Ainsworth et al. use for the loss barrier) and the chord barriers (Entezari et al. 2022).
The recipe: Hparams → executor (jobs.train_job, aligned_lines.aligned_line_job) → metrics → figures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from torch import nn

from ...aligned_lines import METHODS, aligned_line_job
from ...errors import LosspathError
from ...hparams import Hparams
from ...metrics import barrier, barrier_height
from ...store import Run
from ...executors import make_executor
from ...jobs import cached_dataset, train_job
from ...runtime import Runtime
from ...training import model_for
from .figures import draw_all
from ..harness import check_choice, echo_result, finish_study, gathered, study_app


@dataclass(frozen=True)
class WidthSetting:
    """A network family with a width parameter on a data set, with its training hyperparameters."""

    dataset: str
    model: str  # with {w} where the width goes
    widths: tuple[int, ...]
    train: dict = field(default_factory=dict)
    note: str = ""


SETTINGS = {
    "mnist5k-mlp": WidthSetting("mnist5k", "mlp_{w}_{w}_{w}", (32, 128, 512),
                                dict(lr=0.1, batch_size=128, steps="40ep"),
                                "MLP with three hidden layers of width w (Git Re-Basin's MNIST MLP has w = 512) on "
                                "5,000 real MNIST digits, with OpenLTH's LeNet recipe (plain SGD, 40 epochs)"),
    "mnist1d-resnet": WidthSetting("mnist1d", "resnet1d_8_{w}", (4, 16, 64),
                                   dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, steps="16ep",
                                        milestones="8ep,12ep"),
                                   "8-layer 1-D ResNet with BatchNorm, first-stage width w, the CIFAR-ResNet recipe "
                                   "scaled down as in frankle2020's mnist1d-resnet"),
}
DEFAULT_SETTINGS = tuple(SETTINGS)
CAPTIONS = {
    "rebasin_lines": "Test loss along the line between two replicates trained from different seeds (widest "
                     "network of each setting): naive, and with the second permuted by weight or activation "
                     "matching; with BatchNorm, solid: statistics recomputed at every point, dashed: interpolated "
                     "(Git Re-Basin Fig. 2; REPAIR).",
    "rebasin_width": "Test loss barrier height (max along the line minus the mean of the ends) against width, "
                     "naive vs aligned; with BatchNorm, solid: statistics recomputed, dashed: interpolated "
                     "(Git Re-Basin's width plot).",
}


def hparams_for(name: str, width: int, seed: int, steps: str | None = None) -> Hparams:
    """Replicate `seed` (its init and data order) of setting `name` at `width`."""
    if name not in SETTINGS:
        raise LosspathError(f"Unknown setting {name!r}; known settings: {', '.join(SETTINGS)}.")
    s = SETTINGS[name]
    if not isinstance(width, int) or width < 1:
        raise LosspathError(f"Widths must be positive integers, not {width!r}.")
    train = dict(s.train, **({"steps": steps} if steps else {}))
    return Hparams(dataset=s.dataset, model=s.model.format(w=width), seed=seed, **train)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def run_study(settings=DEFAULT_SETTINGS, *, widths: dict | None = None, pairs: int = 1, points: int = 11,
              split: str = "test", methods=METHODS, bn_batches: int | None = None,
              out: str | Path = "results/rebasin", steps: str | None = None, runtime: Runtime | None = None) -> dict:
    """Train (or reuse) every replicate, evaluate every line, write runs.csv, curves.csv, summary.csv, the
    figures and the report. `widths` maps a setting to its widths (default: the setting's own); `bn_batches`
    limits the training batches BatchNorm statistics are recomputed from (default: the whole training split)."""
    runtime, settings, out, started = (runtime or Runtime()).checked(), list(settings), Path(out), time.time()
    for name in [*settings, *(widths or {})]:
        if name not in SETTINGS:
            raise LosspathError(f"Unknown setting {name!r}; known settings: {', '.join(SETTINGS)}.")
    widths = {name: tuple((widths or {}).get(name) or SETTINGS[name].widths) for name in settings}
    for name in settings:
        for w in widths[name]:
            hparams_for(name, w, 0, steps).validate()
    if bn_batches is not None and bn_batches < 1:
        raise LosspathError(f"--bn-batches must be at least 1, not {bn_batches}.")
    if pairs < 1 or points < 3:
        raise LosspathError("--pairs must be at least 1 and --points at least 3.")
    check_choice(split, ("train", "test"), "split")
    if not methods or any(m not in METHODS for m in methods):
        raise LosspathError(f"--method must be one of {', '.join(METHODS)}.")

    runs, lines, modes = {}, {}, {}
    with make_executor(runtime, 2 * pairs * sum(len(w) for w in widths.values())) as ex:
        for name in settings:
            for w in widths[name]:
                hp = hparams_for(name, w, 0, steps)
                modes[name, w] = ("recompute", "interpolate") if has_batchnorm(
                    model_for(hp, cached_dataset(hp.dataset, runtime.data_root))) else ("interpolate",)
                for seed in range(2 * pairs):
                    runs[name, w, seed] = ex.submit(train_job, hparams_for(name, w, seed, steps), runtime)
                for p in range(pairs):
                    for method in methods:
                        for bn in modes[name, w]:
                            options = dict(split=split, points=points, batchnorm=bn,
                                           bn_batches=bn_batches if bn == "recompute" else None)
                            lines[name, w, p, method, bn] = ex.submit(aligned_line_job, runs[name, w, 2 * p],
                                                                      runs[name, w, 2 * p + 1], method, options,
                                                                      runtime)
        tables = _tables(gathered(ex, runs, "training"), gathered(ex, lines, "lines"), split)
    return finish_study(out, study="rebasin", tables=tables, figures=draw_all(tables, out),
                        text=describe(tables), runtime=runtime, started=started,
                        options=dict(pairs=pairs, points=points, split=split, methods=list(methods), steps=steps,
                                     bn_batches=bn_batches),
                        settings={n: dict(dataset=SETTINGS[n].dataset, model=SETTINGS[n].model, widths=list(widths[n]),
                                          **SETTINGS[n].train) for n in settings},
                        captions=CAPTIONS, summary_keys=["setting", "width", "method", "batchnorm"])


def _tables(run_dirs: dict, results: dict, split: str) -> dict:
    runs = []
    for (name, w, seed), d in run_dirs.items():
        done = Run.open(d).done()
        runs.append(dict(setting=name, width=w, seed=seed, run=d, test_loss=done["test_loss"],
                         test_error=done["test_error"], last_step=done["last_step"]))
    curves, summary = [], []
    for (name, w, p, method, bn), line in results.items():
        keys = dict(setting=name, width=w, pair=p, method=method, batchnorm=bn, split=split)
        curves.append(pd.DataFrame(dict(keys, alpha=line.alphas, loss=line.loss, error=line.error)))
        summary.append(dict(keys, loss_barrier_height=barrier_height(line.loss),
                            error_barrier_height=barrier_height(line.error),
                            loss_barrier=barrier(line.alphas, line.loss),
                            error_barrier=barrier(line.alphas, line.error), loss_a=line.loss[0], loss_b=line.loss[-1],
                            error_a=line.error[0], error_b=line.error[-1], distance=line.distance))
    return dict(runs=pd.DataFrame(runs), curves=pd.concat(curves, ignore_index=True), summary=pd.DataFrame(summary))


def describe(tables: dict) -> str:
    """Per setting and width: the replicates' test error, and the loss (error) barrier height of each line."""
    summary, runs = tables["summary"], tables["runs"]
    lines = []
    for name in dict.fromkeys(summary.setting):
        lines.append(f"{name}: loss barrier height (error barrier height) on the {summary.split.iloc[0]} set, "
                     f"mean over {summary.pair.nunique()} pair(s) of seeds")
        per = summary[summary.setting == name]
        for w in sorted(per.width.unique()):
            r = runs[(runs.setting == name) & (runs.width == w)]
            lines.append(f"  width {w}: replicates' test error {r.test_error.mean():.3f}")
            for bn in dict.fromkeys(per.batchnorm):
                rows = per[(per.width == w) & (per.batchnorm == bn)].groupby("method", sort=False)
                values = ", ".join(f"{m} {g.loss_barrier_height.mean():.3f} ({g.error_barrier_height.mean():.3f})"
                                   for m, g in rows)
                label = "" if per.batchnorm.nunique() == 1 else f" [BatchNorm {bn}]"
                lines.append(f"    {values}{label}")
        lines.append(_trend(per))
        lines.extend(_notes(per))
    return "\n".join(line for line in lines if line)


def _notes(per: pd.DataFrame) -> list[str]:
    """How the smallest aligned barrier compares with Git Re-Basin's near-zero ones, and, with BatchNorm, the
    mean error barrier with interpolated vs recomputed statistics (REPAIR's point)."""
    notes = []
    bn = "recompute" if (per.batchnorm == "recompute").any() else "interpolate"
    aligned = per[(per.method != "naive") & (per.batchnorm == bn)]
    if len(aligned):
        best = aligned.groupby(["method", "width"]).loss_barrier_height.mean()
        (method, width), value = best.idxmin(), best.min()
        notes.append(f"  smallest aligned loss barrier: {value:.3f} ({method} matching, width {width}); Git Re-Basin "
                     f"reports barriers near zero for wide enough networks")
    if per.batchnorm.nunique() > 1:
        means = per.groupby("batchnorm").error_barrier_height.mean()
        notes.append(f"  BatchNorm statistics: mean error barrier height {means['interpolate']:.3f} interpolated vs "
                     f"{means['recompute']:.3f} recomputed along the line (Jordan et al. 2023, REPAIR)")
    return notes


def _trend(per: pd.DataFrame) -> str:
    """One sentence: at how many widths each alignment lowers the loss barrier, and how each barrier changes
    from the narrowest to the widest network (BatchNorm statistics recomputed where the network has them)."""
    bn = "recompute" if (per.batchnorm == "recompute").any() else "interpolate"
    rows = per[per.batchnorm == bn].groupby(["width", "method"]).loss_barrier_height.mean().unstack()
    rows = rows[[m for m in METHODS if m in rows.columns]]
    if "naive" not in rows.columns or len(rows.columns) < 2:
        return ""
    widths = rows.index.tolist()
    where = " (BatchNorm statistics recomputed)" if bn == "recompute" else ""
    aligned = [m for m in rows.columns if m != "naive"]
    text = "  " + "; ".join(f"{m} matching lowers the loss barrier at {int((rows[m] < rows.naive).sum())} of "
                            f"{len(widths)} widths" for m in aligned) + where
    if len(widths) < 2:
        return text
    change = ", ".join(f"{m} {rows[m].iloc[0]:.3f} → {rows[m].iloc[-1]:.3f}"
                       + (" (falling at every width)" if bool((rows[m].diff().dropna() < 0).all()) else "")
                       for m in rows.columns)
    return f"{text}; from width {widths[0]} to {widths[-1]}: {change}"


def _parse_widths(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, _, values = item.partition("=")
        try:
            out[name] = tuple(int(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise LosspathError(f"--widths takes SETTING=W1,W2,..., not {item!r}.") from None
        if not out[name]:
            raise LosspathError(f"--widths takes SETTING=W1,W2,..., not {item!r}.")
    return out


def cli(
    setting: list[str] = typer.Option(list(DEFAULT_SETTINGS), "--setting", "-s",
                                      help=f"Repeatable. Known: {', '.join(SETTINGS)}."),
    widths: list[str] = typer.Option([], "--widths", help="Repeatable: SETTING=W1,W2,... (default: "
                                     + "; ".join(f"{n}={','.join(map(str, s.widths))}"
                                                 for n, s in SETTINGS.items()) + ")."),
    pairs: int = typer.Option(1, "--pairs", help="Pairs of seeds per width (seeds 2p and 2p+1)."),
    points: int = typer.Option(11, "--points", help="Evenly spaced α in [0, 1] per line."),
    split: str = typer.Option("test", "--split", help="test or train."),
    method: list[str] = typer.Option(list(METHODS), "--method", help="Repeatable: naive, weight, activation."),
    bn_batches: Optional[int] = typer.Option(None, "--bn-batches", help="Training batches (of 128) BatchNorm "
                                             "statistics are recomputed from at each α (default: all)."),
    steps: Optional[str] = typer.Option(None, "--steps", help="Override every setting's training length."),
    out: Path = typer.Option(Path("results/rebasin"), "--out", help="Output directory."),
    runtime: Runtime = None,
):
    """Git Re-Basin: the line between two replicates, naive vs weight- and activation-matched, against width.

    \b
    Examples:
      losspath reproduce rebasin --threads 1
      losspath reproduce rebasin --setting mnist1d-resnet --widths mnist1d-resnet=4,8,16,32,64 --pairs 3
    """
    result = run_study(setting, widths=_parse_widths(widths), pairs=pairs, points=points, split=split, methods=method,
                       bn_batches=bn_batches, out=out, steps=steps, runtime=runtime)
    echo_result(result, out, "runs.csv, curves.csv, summary.csv")


app = study_app(cli)
