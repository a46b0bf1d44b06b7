"""The "simple model" of Wang et al. 2023: last-layer biases differ between classes on perfectly balanced data.

An r-homogeneous network — a depth-r linear (or ReLU) net with a bias only on its output (`deeplinear_R_W`,
`deeprelu_R_W` in the model registry) — is trained by full-batch gradient descent with cross-entropy on a
balanced K-class toy set whose classes carry signals of different strength (`data.toy`), so that the classes
are learned one after another. From the checkpoints saved every few iterations we read, per class, the norm
of its end-to-end weight (row k of W_r ... W_1) and its output bias; then we interpolate init → final and
measure the plateau for every r and init scale. Paper's picture: the class learned last ends with the largest
bias, and the plateau lengthens with r and with smaller init.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import List, Optional

import typer

import torch

from ...executors import make_executor
from ...jobs import line_job, train_job
from ...runtime import Runtime, torch_threads
from ...store import Run
from ..harness import check_choice, echo_result, finish_study, gathered, study_app

DEFAULT_DEPTHS = (1, 2, 3, 4, 5)
DEFAULT_INIT_SCALES = (0.1, 0.3, 1.0)
SCHEMES = ("all", "homogeneous", "weights")
TRAIN = dict(lr=0.1, batch_size=0, steps="600it", checkpoints="every:10it")  # full-batch GD
CAPTIONS = {
    "toy_dynamics": "Per class, the norm of its end-to-end weight and its output bias during full-batch GD, one column "
                    "per depth r; dotted: when the class was learned (mean loss on its examples below ½·log K).",
    "toy_plateau": "Where the plateau ends (first α with 10% of the total drop; error measured from the first α > 0) "
                   "against r and against the init scale; scheme all, trained nets only.",
    "toy_curves": "Training error and loss along init → final for every r at the init scale of the dynamics figure.",
}
LEARNED_LOSS = 0.5  # class k is learned once the mean loss on its examples is below 0.5 · log K


def toy_dynamics(run, evaluator, data):
    """A pandas DataFrame, one row per saved step × class: the norm of the class's end-to-end weight, its output
    bias, the mean cross-entropy over its training examples (`evaluator`: a CheckpointEvaluator), and the step
    at which it was learned."""
    import numpy as np
    import pandas as pd
    import torch.nn.functional as F

    from ...checkpoints import load_state
    from ...models.toy import end_to_end_weight

    y = data.train.targets
    k = data.num_classes
    rows = []
    for step in run.saved_steps():
        state = load_state(run.checkpoint(step))
        norms = end_to_end_weight(state).norm(dim=1).numpy()
        bias = state["fc.bias"].double().numpy()
        loss = F.cross_entropy(evaluator.logits(state, "train"), y, reduction="none")
        per_class = torch.zeros(k, dtype=torch.float64).index_add_(0, y, loss) / torch.bincount(y, minlength=k)
        for c in range(k):
            rows.append(dict(step=step, cls=c, weight_norm=float(norms[c]), bias_value=float(bias[c]),
                             class_loss=float(per_class[c])))
    frame = pd.DataFrame(rows)
    learned = {}
    for c, g in frame.groupby("cls"):
        hit = np.nonzero(g.class_loss.to_numpy() < LEARNED_LOSS * math.log(k))[0]
        learned[c] = int(g.step.to_numpy()[hit[0]]) if len(hit) else -1
    frame["learned_step"] = frame.cls.map(learned)
    return frame


def run_study(*, depths=DEFAULT_DEPTHS, init_scales=DEFAULT_INIT_SCALES, replicates: int = 1, width: int = 16,
              activation: str = "linear", strengths=None, per_class: int = 32, noise: float = 1.0,
              dim: int | None = None, points: int = 100, train_overrides: dict | None = None,
              out: str | Path = "results/mli_toy", figures: bool = True, runtime: Runtime | None = None) -> dict:
    """Train (or reuse) the toy nets — r in `depths` × `init_scales` × seeds 0..replicates-1, `deeplinear_R_W`
    (or `deeprelu_R_W` with activation="relu") on `make_toy_dataset(strengths, per_class, noise, dim)` — and
    write dynamics.csv, classes.csv, curves.csv, summary.csv, findings.txt and (unless figures=False) the
    figures under `out`. Returns the tables, the figure paths, the printed text and the wall time."""
    import pandas as pd

    from ...data import load_dataset
    from ...data.toy import DEFAULT_STRENGTHS, make_toy_dataset
    from ...errors import LosspathError
    from ...hparams import Hparams

    runtime, out, started = (runtime or Runtime()).checked(), Path(out), time.time()
    depths, init_scales = [int(d) for d in depths], [float(s) for s in init_scales]
    if not depths or min(depths) < 1:
        raise LosspathError(f"Depths r must be integers of at least 1, got {depths}.")
    if not init_scales or not all(math.isfinite(s) and s > 0 for s in init_scales):
        raise LosspathError(f"Init scales must be positive numbers, got {init_scales}.")
    if replicates < 1 or width < 1 or points < 3:
        raise LosspathError("--replicates and --width must be at least 1 and --points at least 3.")
    check_choice(activation, ("linear", "relu"), "activation")
    strengths = [float(v) for v in (DEFAULT_STRENGTHS if strengths is None else strengths)]
    data = make_toy_dataset(strengths, per_class=per_class, noise=noise, dim=dim)
    if not torch.equal(load_dataset(data.name).train.inputs, data.train.inputs):  # jobs find the data by name
        raise LosspathError("Give the class strengths and the noise with at most 6 significant digits.")
    training = dict(TRAIN, **(train_overrides or {}))
    nets = {(r, scale, seed): Hparams(dataset=data.name, model=f"deep{activation}_{r}_{width}", init_scale=scale,
                                      seed=seed, **training)
            for seed in range(replicates) for scale in init_scales for r in depths}
    line_options = dict(split="train", points=points)
    with make_executor(runtime, len(nets)) as ex:
        runs = gathered(ex, {key: ex.submit(train_job, hp, runtime, None, True) for key, hp in nets.items()},
                        "training")
        lines = gathered(ex, {(key, scheme): ex.submit(line_job, run_dir, 0, "last", dict(line_options, scheme=scheme),
                                                       runtime)
                              for key, run_dir in runs.items() if run_dir for scheme in SCHEMES}, "lines")

    dyn, classes, curves, summary = [], [], [], []
    with torch_threads(runtime.threads):
        for (r, scale, seed), run_dir in runs.items():
            key = dict(r=r, init_scale=scale, replicate=seed)
            if run_dir is None:
                summary.append(dict(**key, scheme="all", status="diverged"))
                continue
            net = toy_net(Run.open(run_dir), data, strengths, {s: lines[(r, scale, seed), s] for s in SCHEMES}, key)
            dyn.append(net["dynamics"])
            classes += net["classes"]
            curves += net["curves"]
            summary += net["summary"]
    if not dyn:
        raise LosspathError("Every toy run diverged; lower the learning rate (--lr).")
    tables = dict(dynamics=pd.concat(dyn, ignore_index=True), classes=pd.DataFrame(classes),
                  curves=pd.concat(curves, ignore_index=True), summary=pd.DataFrame(summary))
    return finish_study(out, study="mli-toy", tables=tables, figures=_figures(tables, out) if figures else [],
                        text=describe(tables, strengths, training), runtime=runtime, started=started,
                        settings=dict(training=training, data=data.name, width=width, activation=activation),
                        options=dict(depths=depths, init_scales=init_scales, replicates=replicates, points=points),
                        captions=CAPTIONS, title="MLI plateau: the toy model (Wang et al. 2023)",
                        summary_keys=["r", "init_scale", "scheme"])


def toy_net(run, data, strengths, lines: dict, key: dict) -> dict:
    """What the study records of one trained toy net (`key`: its r, init scale and replicate): its dynamics
    (toy_dynamics), per-class rows, and per scheme its curve and its summary row, from its `lines` (scheme →
    LineResult from 0 to last)."""
    import numpy as np
    import pandas as pd

    from ...metrics import common_class_share, init_dominance, regime_plateaus
    from ...training import CheckpointEvaluator, model_for

    evaluator, last = CheckpointEvaluator(model_for(run.hparams, data), data), run.done()["last_step"]
    status = "trained" if evaluator.checkpoint(run, last, "train")[1] < 0.5 * (1 - 1 / data.num_classes) else \
        "not trained"
    d = toy_dynamics(run, evaluator, data)
    final = d[d.step == d.step.max()].sort_values("cls")
    learned = final.learned_step.to_numpy()
    ranks = pd.Series(np.where(learned < 0, np.inf, learned)).rank(method="min").to_numpy()
    classes = [dict(**key, cls=row.cls, strength=strengths[row.cls], learned_step=row.learned_step,
                    learned_rank=int(rank) if row.learned_step >= 0 else -1, final_weight_norm=row.weight_norm,
                    final_bias=row.bias_value) for row, rank in zip(final.itertuples(), ranks)]
    bias = final.bias_value.to_numpy()
    top = int(bias.argmax())
    dominance = init_dominance(evaluator.logits(run.load_checkpoint(0), "train"), bias,
                               evaluator.logits(run.load_checkpoint(last), "train"))
    # the last-learned class: largest learned step (a class never learned counts as learned last); with the
    # checkpoint grid several classes can tie, and the largest-bias class counts as last if it is among them
    when = np.where(learned < 0, np.inf, learned)
    last_learned, tied = int(np.argmax(when)), int((when == when.max()).sum())
    curves, summary = [], []
    for scheme, line in lines.items():
        shares = line.class_counts / max(line.num_examples, 1)
        curves.append(pd.DataFrame(dict(**{c: [v] * len(line.alphas) for c, v in key.items()}, scheme=scheme, alpha=line.alphas, loss=line.loss, error=line.error,
                                        dominant_class=shares.argmax(1), bias_argmax_share=shares[:, top])))
        m = {k: v for k, v in line.summary().items() if k.startswith(("loss_", "error_"))}
        m |= regime_plateaus(line.alphas, line.loss, line.error, data.num_classes)
        on = (line.alphas > 0) & (line.alphas < m["error_plateau_end_chance"])
        common, common_share = common_class_share(line.alphas, line.class_counts, m["error_plateau_end_chance"])
        summary.append(dict(**key, scheme=scheme, status=status, final_error=line.error[-1], final_loss=line.loss[-1], **m,
                            **dominance, common_class=common, common_class_share=common_share,
                            last_learned_class=last_learned, last_learned_tied=tied, largest_bias_class=top,
                            last_learned_has_largest_bias=bool(when[top] == when.max()),
                            bias_spread=float(bias.max() - bias.min()),
                            bias_argmax_share_plateau=float(shares[on, top].mean()) if on.any() else math.nan))
    dynamics = d.assign(**key, strength=d.cls.map(dict(enumerate(strengths))))
    return dict(dynamics=dynamics, classes=classes, curves=curves, summary=summary)


def _figures(tables: dict, out: Path) -> list:
    """The three figures; dynamics and curves show the smallest init scale at which every depth trained."""
    from .figures import plot_toy_curves, plot_toy_dynamics, plot_toy_plateau

    summary = tables["summary"]
    runs = summary[summary.scheme == "all"]
    every = [v for v, g in runs.groupby("init_scale") if (g.status == "trained").all()]
    shown = min(every) if every else float(runs.init_scale.min())
    return (plot_toy_dynamics(tables["dynamics"], out / "toy_dynamics", init_scale=shown)
            + plot_toy_plateau(summary[summary.status == "trained"], out / "toy_plateau")
            + plot_toy_curves(tables["curves"], out / "toy_curves", init_scale=shown))


def describe(tables: dict, strengths, training: dict) -> str:
    """The printed summary: learning order and biases per run, and the plateau against r and init scale."""
    from ...metrics import rank_correlation, regime_of

    s, c = tables["summary"], tables["classes"]
    ran = s[(s.status != "diverged") & (s.scheme == "all")]
    ok = ran[ran.status == "trained"]
    lines = [f"MLI toy model: K = {len(strengths)} balanced classes with signal strengths "
             f"{', '.join(f'{v:g}' for v in strengths)}; full-batch GD, lr {training['lr']:g}, {training['steps']}."]
    diverged = s[s.status == "diverged"]
    if len(diverged):
        lines.append("  diverged: " + ", ".join(f"r={r.r} init ×{r.init_scale:g}" for r in diverged.itertuples()))
    stuck = ran[ran.status != "trained"]
    lines.append(f"  {len(ok)} of {len(ran)} nets trained (final training error < half of chance); not trained: "
                 + (", ".join(f"r={r.r} init ×{r.init_scale:g} (error {r.final_error:.2f})" for r in stuck.itertuples())
                    or "none"))
    hits = int(ok.last_learned_has_largest_bias.sum())
    chance = float((ok.last_learned_tied / len(strengths)).sum())
    lines.append(f"  the last-learned class has the largest output bias in {hits}/{len(ok)} trained nets (ties on "
                 f"the checkpoint grid included; a random class would be in {chance:.1f}/{len(ok)}); a class is "
                 "learned once the mean loss on its examples is below ½·log K")
    for row in ran.itertuples():
        g = c[(c.r == row.r) & (c.init_scale == row.init_scale) & (c.replicate == row.replicate)].sort_values("cls")
        order = " ".join(f"{int(x.cls)}@{int(x.learned_step)}" for x in g.sort_values("learned_step").itertuples())
        lines.append(f"    r={row.r} init ×{row.init_scale:g} seed {row.replicate}: learned (class@iteration) {order}; "
                     f"final biases {' '.join(f'{b:+.2f}' for b in g.final_bias)}")
    ratios = ok.groupby("init_scale").ratio_bias.median()
    lines.append("  init-dominance ratio (std of the initial logits ÷ spread of the final output bias), median per "
                 "init scale: " + ", ".join(f"×{v:g}: {r:.2g} ({regime_of(r)})" for v, r in ratios.items()))
    for col, what in (("error_plateau_end_chance", "error plateau end (against chance, from the first α > 0)"),
                      ("loss_plateau_end_logk", "loss plateau end (against log K, from the first α > 0)")):
        table = ok.groupby(["r", "init_scale"])[col].mean().unstack()
        lines.append(f"  {what}, scheme all; rows r, columns init scale:")
        lines.append("    r  " + " ".join(f"{v:>6g}" for v in table.columns))
        for r, row in table.iterrows():
            lines.append(f"    {r:<2d} " + " ".join(f"{v:6.2f}" for v in row.to_numpy()))
    inside = ok[ok.ratio_bias.map(regime_of) == "inside"]
    for col, what in (("error_plateau_end_chance", "error"), ("loss_plateau_end_logk", "loss")):
        rho_r, rho_s = rank_correlation(inside.r, inside[col]), rank_correlation(inside.init_scale, inside[col])
        lines.append(f"  {what}, nets inside the paper's regime ({len(inside)}): deeper → longer plateau? ρ(r, end) = "
                     f"{rho_r:+.2f}: {_trend(rho_r, +1)}; smaller init → longer? ρ(init scale, end) = {rho_s:+.2f}: "
                     f"{_trend(rho_s, -1)}")
    lines.append(f"  (error plateau end measured from α = 0 itself, as metrics.plateau_end does: mean "
                 f"{ok.error_plateau_end.mean():.2f}, vs {ok.error_plateau_end_chance.mean():.2f} against chance from "
                 "the first α > 0)")
    keys = ["r", "init_scale", "replicate"]
    for scheme in ("homogeneous", "weights"):
        o = s[(s.status == "trained") & (s.scheme == scheme)].merge(ok[keys], on=keys)
        if len(o):
            lines.append(f"  scheme {scheme}: mean error plateau end {o.error_plateau_end_chance.mean():.2f}, loss "
                         f"{o.loss_plateau_end_logk.mean():.2f} (scheme all: {ok.error_plateau_end_chance.mean():.2f}, "
                         f"{ok.loss_plateau_end_logk.mean():.2f})")
    lines.append(f"  on the error plateau a mean {ok.bias_argmax_share_plateau.mean():.0%} of examples are predicted "
                 f"as the argmax-bias class, {ok.common_class_share.mean():.0%} as one common class (scheme all)")
    return "\n".join(lines)


def _trend(rho: float, expected_sign: int) -> str:
    """A rank correlation read against the paper's predicted sign."""
    if not math.isfinite(rho):
        return "not measurable here"
    if abs(rho) < 0.2:
        return "no clear trend (the paper predicts one)"
    return "agrees with the paper" if rho * expected_sign > 0 else "disagrees with the paper"


def cli(
    depth: Optional[List[int]] = typer.Option(None, "--depth", "-d", help="Depths r (weight layers); repeatable "
                                              f"(default {' '.join(map(str, DEFAULT_DEPTHS))})."),
    init_scale: Optional[List[float]] = typer.Option(
        None, "--init-scale", help=f"Multiplier on the Kaiming init; repeatable (default "
                                   f"{' '.join(map(str, DEFAULT_INIT_SCALES))})."),
    replicates: int = typer.Option(1, "--replicates", "-r", help="Seeds 0..R-1 per setting (as in every study)."),
    width: int = typer.Option(16, "--width", help="Hidden width."),
    activation: str = typer.Option("linear", "--activation", help="linear or relu between the layers."),
    strength: Optional[List[float]] = typer.Option(None, "--strength", help="Class signal strengths, one per class "
                                                   "(repeatable; default 4 2 1 0.5, K = 4)."),
    per_class: int = typer.Option(32, "--per-class", help="Examples per class."),
    noise: float = typer.Option(1.0, "--noise", help="Std of the Gaussian noise on the nuisance axes."),
    dim: Optional[int] = typer.Option(None, "--dim",
                                      help="Input dimension: K class axes + nuisance axes (default 4K)."),
    points: int = typer.Option(100, "--points", help="Evenly spaced α in [0, 1] per line."),
    steps: Optional[str] = typer.Option(None, "--steps", help=f"GD iterations (default {TRAIN['steps']})."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"GD step size (default {TRAIN['lr']})."),
    out: Path = typer.Option(Path("results/mli_toy"), "--out", help="Output directory."),
    runtime: Runtime = None,
):
    """Wang et al. 2023's simple model: per-class weights and biases over training; plateau vs r and init scale.

    \b
    Examples:
      losspath reproduce mli-toy
      losspath reproduce mli-toy -d 2 -d 4 --init-scale 0.1 --activation relu --noise 0.2
    """
    overrides = {k: v for k, v in dict(steps=steps, lr=lr).items() if v is not None}
    result = run_study(depths=depth or DEFAULT_DEPTHS, init_scales=init_scale or DEFAULT_INIT_SCALES,
                       replicates=replicates, width=width, activation=activation, strengths=strength or None,
                       per_class=per_class, noise=noise, dim=dim, points=points, train_overrides=overrides, out=out,
                       runtime=runtime)
    echo_result(result, out, "dynamics.csv, classes.csv, curves.csv, summary.csv")


app = study_app(cli)
