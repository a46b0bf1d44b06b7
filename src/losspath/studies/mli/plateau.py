"""Wang et al. 2023, "Plateau in monotonic linear interpolation — a 'biased' view of loss landscape".

The claim: on the line from initialization to the trained network, a long plateau in loss and error appears
when the classes get different biases (last layer, or hidden layers in deep nets); it is the biases, not the
weights, that make it, so a bias-free homogeneous net has none (the paper's introduction: with a *small*
init, such a net predicts the same labels along the whole line), and moving the biases homogeneously
(b_ℓ(α) ∝ α^ℓ) removes it. The claim is about nets whose random init is small next to what training puts
into the biases. A large init (Kaiming ×1 and above on these nets) decides the start of the line on its own;
there the claim says nothing, and a plateau or its absence is no evidence either way.

The paper's experimental section (depths, init values, optimizer, plateau definition) could not be
recovered from the text we have, so the sweep is our choice: ReLU MLPs of 2/4/8 hidden layers × init scale
0.1/0.25/0.5/1 (×1.5 as a labelled reference outside the regime) × ≥ 3 seeds, each with its bias-free twin,
trained to 1% training error (Hparams.stop_at_train_error, capped; nets at the cap are reported as not
converged, never dropped). For every net: the init-dominance ratios (losspath.metrics.init_dominance) place it
inside the regime (< INSIDE), outside it (≥ OUTSIDE, init-dominated) or between; every line init → final on
the training split under the schemes `all`, `homogeneous` (every bias α^ℓ), `homogeneous_output` (the output
bias alone α^L) and `weights` (biases held at the end); the error plateau against chance and the loss plateau
against log K, from the first α > 0 (metrics.regime_plateaus), beside metrics.plateau_end; the share of
examples predicted as one common class on the plateau. Verdicts are per (data, depth, init) cell and per
regime (`verdicts.py`).

The recipe: Hparams → training.train (to convergence) → lines.run_line per scheme → metrics → figures.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer

from ...executors import make_executor
from ...jobs import cached_dataset, line_job, train_job
from ...runtime import Runtime, torch_threads
from ...store import Run
from ..harness import check_choice, echo_result, finish_study, gathered, study_app

DEFAULT_DATA = ("digits",)
DEFAULT_DEPTHS = (2, 4, 8)
DEFAULT_INIT_SCALES = (0.1, 0.25, 0.5, 1.0, 1.5)  # 1.5: a reference outside the paper's regime
DEFAULT_REPLICATES = 3
DEFAULT_WIDTH = 32
SCHEMES = ("all", "homogeneous", "homogeneous_output", "weights")
# One recipe for every net: plain SGD with momentum until 1% training error, capped at 200 epochs. lr 0.05 is the
# largest of 0.01/0.05/0.1 that trains the small-init cells without diverging the ×1 8-layer nets (0.1 diverges
# there; 0.01 leaves 4 hidden layers at ×0.1 at chance). At 8 hidden layers ×0.25 and ×0.1 no rate we tried
# leaves chance within the cap: those nets are reported as not converged.
TRAIN = dict(lr=0.05, momentum=0.9, batch_size=128, steps="200ep", stop_at_train_error=0.01)
LEARNED_FRACTION = 0.5  # a class is learned at the first checkpoint where its F1 reaches half its final F1
CAPTIONS = {
    "plateau_vs_dominance": "Error plateau end (against chance, from the first α > 0) of every converged net against "
                            "its init-dominance ratio (std of the initial logits ÷ spread of the final logits' class "
                            "means); left of the dotted line the paper's regime, right of the dashed one "
                            "init-dominated. Colours: with biases (all), bias-free twin, homogeneous, output-bias "
                            "homogeneous.",
    "curves_by_scheme": "Training loss and error along init → final for the featured net (converged with its bias-free "
                        "twin, at the smallest such init scale, the deepest there), one line per scheme; black: the "
                        "bias-free twin.",
    "class_shares": "Share of training examples predicted as each class along the line for the featured net; hatched: "
                    "the argmax class of the last-layer bias; dashed: the error plateau end (against chance).",
    "last_layer_biases": "Final last-layer bias per class of the featured net; the number is the order in which the "
                         "class was learned (F1 reaching half its final value).",
}


@dataclass(frozen=True)
class Setting:
    """One network of the sweep: `depth` is the number of hidden layers (the net has depth + 1 weight layers)."""

    dataset: str
    family: str  # "mlp" or "conv"
    model: str
    depth: int
    init_scale: float
    bias: bool
    seed: int

    def hparams(self, train: dict):
        from ...hparams import Hparams

        return Hparams(dataset=self.dataset, model=self.model, init_scale=self.init_scale, bias=self.bias,
                       seed=self.seed, **train)

    def row(self) -> dict:
        return dict(dataset=self.dataset, family=self.family, model=self.model, depth=self.depth,
                    layers=self.depth + 1, init_scale=self.init_scale, bias=self.bias, replicate=self.seed)


def convnet_for(input_shape: tuple[int, ...]) -> tuple[str, int] | None:
    """The registry's convnet for inputs of this shape and its number of hidden (conv) layers, or None."""
    if len(input_shape) == 2:
        return "conv1d", 3
    if len(input_shape) == 3:
        return "convnet6", 4
    return None


def settings_for(name: str, dataset, *, depths, init_scales, replicates: int, width: int,
                 conv_init_scales=()) -> list[Setting]:
    """The sweep on data set `name`: ReLU MLPs of every depth × init scale × {bias, bias-free} × seed, and the
    registry convnet for the data's input shape at each of `conv_init_scales` (none by default)."""
    out = []
    conv = convnet_for(dataset.input_shape)
    for seed in range(replicates):
        for scale in init_scales:
            for depth in depths:
                for bias in (True, False):
                    out.append(Setting(name, "mlp", "mlp" + f"_{width}" * depth, depth, float(scale), bias, seed))
        for scale in conv_init_scales if conv is not None else ():
            for bias in (True, False):
                out.append(Setting(name, "conv", conv[0], conv[1], float(scale), bias, seed))
    return out


def last_layer_bias(state: dict, num_classes: int):
    """The output layer's bias (the last bias of the state with shape (num_classes,)) as float64 numpy, or None."""
    from ...keys import is_bias

    found = None
    for k, v in state.items():
        if is_bias(k) and tuple(v.shape) == (num_classes,):
            found = v
    return None if found is None else found.detach().double().cpu().numpy()


def class_learning_steps(run, evaluator, split):
    """For every class, the first saved iteration at which its F1 score on `split` reaches LEARNED_FRACTION of
    its final F1 (F1, not recall: a fresh net that predicts one class everywhere has recall 1 on it).
    Returns (steps (K,), final F1 (K,)); a class never learned (final F1 = 0) gets -1."""
    import numpy as np

    k = split.num_classes
    steps = run.saved_steps()
    y = split.targets.numpy()
    f1s = []
    for s in steps:
        pred = evaluator.logits(run.load_checkpoint(s), split).numpy().argmax(1)
        c = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1s.append(np.nan_to_num(2 * np.diag(c) / (c.sum(0) + c.sum(1))))
    f1s = np.array(f1s)
    learned = np.full(k, -1, dtype=np.int64)
    for c in range(k):
        if f1s[-1, c] > 0:
            learned[c] = steps[int(np.argmax(f1s[:, c] >= LEARNED_FRACTION * f1s[-1, c]))]
    return learned, f1s[-1]


def schemes_of(s: Setting) -> tuple[str, ...]:
    """The schemes a net's lines take. Without biases every scheme is plain interpolation
    (tests/test_lines.py), so a bias-free twin runs `all` only."""
    return SCHEMES if s.bias else ("all",)


def study_net(s: Setting, run, d, lines: dict, *, split: str) -> tuple[dict, list, list, dict]:
    """Everything the study records of one trained net from its `lines` (scheme → LineResult, init → final):
    its row of runs.csv, its rows of summary.csv and biases.csv, and its curves (scheme → DataFrame) and class
    shares (scheme → points × K)."""
    import numpy as np
    import pandas as pd

    from ...metrics import common_class_share, init_dominance, regime_plateaus
    from ...training import CheckpointEvaluator, model_for

    hp, k = run.hparams, d.num_classes
    evaluator, done = CheckpointEvaluator(model_for(hp, d), d), run.done()
    last = done["last_step"]
    start, end = run.load_checkpoint(0), run.load_checkpoint(last)
    b = last_layer_bias(end, k)
    end_train = evaluator.logits(end, "train")
    end_logits = end_train if split == "train" else evaluator.logits(end, split)
    dominance = init_dominance(evaluator.logits(start, split), b, end_logits)
    train_error = float((end_train.argmax(1) != d.train.targets).double().mean())
    target = hp.stop_at_train_error
    status = ("converged" if train_error <= target else "not converged") if target else "trained (no target)"
    net = dict(**s.row(), run=run.dir.name, status=status, train_error=train_error, test_error=done["test_error"],
               last_step=last, **dominance)
    learned, f1 = class_learning_steps(run, evaluator, d.train)
    ranks = pd.Series(np.where(learned < 0, np.inf, learned)).rank(method="min").to_numpy()
    biases = [dict(**s.row(), cls=c, bias_value=np.nan if b is None else b[c], learned_step=int(learned[c]),
                   learned_rank=int(ranks[c]) if learned[c] >= 0 else -1, final_f1=f1[c]) for c in range(k)]
    top = int(np.argmax(b)) if b is not None else -1
    summary, curves, shares = [], {}, {}
    for scheme, line in lines.items():
        share = line.class_counts / max(line.num_examples, 1)
        m = {k: v for k, v in line.summary().items() if k.startswith(("loss_", "error_"))}
        m |= regime_plateaus(line.alphas, line.loss, line.error, k)
        common, common_share = common_class_share(line.alphas, line.class_counts, m["error_plateau_end_chance"])
        on = (line.alphas > 0) & (line.alphas < m["error_plateau_end_chance"])
        summary.append(dict(**net, scheme=scheme, split=split, start_error=line.error[0], end_error=line.error[-1],
                            **m, common_class=common, common_class_share=common_share, bias_argmax_class=top,
                            bias_argmax_share=float(share[on, top].mean()) if top >= 0 and on.any() else np.nan,
                            bias_spread=np.nan if b is None else float(b.max() - b.min()), distance=line.distance))
        curves[scheme] = pd.DataFrame(dict(**{c: [v] * len(line.alphas) for c, v in s.row().items()}, scheme=scheme,
                                           split=split, alpha=line.alphas, loss=line.loss, error=line.error,
                                           dominant_class=share.argmax(1), dominant_share=share.max(1)))
        shares[scheme] = share
    return net, summary, biases, dict(curves=curves, shares=shares)


def run_study(data=DEFAULT_DATA, *, depths=DEFAULT_DEPTHS, init_scales=DEFAULT_INIT_SCALES,
              replicates: int = DEFAULT_REPLICATES, width: int = DEFAULT_WIDTH, points: int = 100,
              split: str = "train", conv_init_scales=(), hold: str = "end", train_overrides: dict | None = None,
              out: str | Path = "results/mli_plateau", figures: bool = True, runtime: Runtime | None = None) -> dict:
    """Train (or reuse) the sweep to convergence, evaluate every line and write curves.csv, summary.csv,
    biases.csv, runs.csv, findings.txt and the figures under `out`. Returns the tables, figures, text, seconds."""
    import pandas as pd

    from ...errors import LosspathError
    from .verdicts import describe

    runtime, out, started = (runtime or Runtime()).checked(), Path(out), time.time()
    depths, init_scales = [int(v) for v in depths], [float(v) for v in init_scales]
    conv_init_scales = [float(v) for v in conv_init_scales]
    data = [str(n).strip().lower() for n in data]
    if not data:
        raise LosspathError("Give at least one data set (--data).")
    if not depths or min(depths) < 1:
        raise LosspathError(f"Depths (hidden layers) must be integers of at least 1, got {depths}.")
    if not init_scales or not all(math.isfinite(v) and v > 0 for v in init_scales + conv_init_scales):
        raise LosspathError(f"Init scales must be positive numbers, got {init_scales + conv_init_scales}.")
    if width < 1:
        raise LosspathError(f"--width must be at least 1, not {width}.")
    check_choice(split, ("train", "test"), "split")
    check_choice(hold, ("end", "start"), "--hold")
    training = dict(TRAIN, **(train_overrides or {}))
    datasets = {name: cached_dataset(name, runtime.data_root) for name in dict.fromkeys(data)}
    nets = [s for name, d in datasets.items()
            for s in settings_for(name, d, depths=depths, init_scales=init_scales, replicates=replicates, width=width,
                                  conv_init_scales=conv_init_scales)]
    with make_executor(runtime, len(nets)) as ex:
        runs = gathered(ex, {s: ex.submit(train_job, s.hparams(training), runtime, None, True) for s in nets},
                        "training")
        lines = gathered(ex, {(s, scheme): ex.submit(line_job, runs[s], 0, "last",
                                                     dict(split=split, points=points, scheme=scheme, hold=hold), runtime)
                              for s in nets if runs[s] for scheme in schemes_of(s)}, "lines")

    rows, summary, biases, curves, featured = [], [], [], [], {}
    with torch_threads(runtime.threads):
        for s in nets:
            if runs[s] is None:
                rows.append(dict(**s.row(), run=s.hparams(training).run_id(), status="diverged"))
                continue
            net, summary_rows, bias_rows, per_scheme = study_net(
                s, Run.open(runs[s]), datasets[s.dataset], {c: lines[s, c] for c in schemes_of(s)}, split=split)
            rows.append(net)
            summary += summary_rows
            biases += bias_rows
            curves += list(per_scheme["curves"].values())
            featured[s] = per_scheme["shares"]
    if not summary:
        raise LosspathError("Every run diverged; lower the learning rate (--lr).")
    tables = dict(curves=pd.concat(curves, ignore_index=True), summary=pd.DataFrame(summary),
                  biases=pd.DataFrame(biases), runs=pd.DataFrame(rows))
    from .figures import draw_plateau_study

    return finish_study(out, study="mli-plateau", tables=tables,
                        figures=draw_plateau_study(tables, featured, out) if figures else [],
                        text=describe(tables, split=split, training=training), runtime=runtime, started=started,
                        settings=dict(training=training, width=width, replicates=replicates),
                        options=dict(data=data, depths=depths, init_scales=init_scales,
                                     conv_init_scales=conv_init_scales, points=points, split=split, hold=hold),
                        captions=CAPTIONS, title="MLI plateau: the biased view (Wang et al. 2023)",
                        summary_keys=["dataset", "family", "model", "depth", "init_scale", "bias", "scheme"])


def cli(
    data: Optional[List[str]] = typer.Option(None, "--data", help="Repeatable; default digits (mnist1d, mnist, "
                                             "cifar10 from --data-root)."),
    depth: Optional[List[int]] = typer.Option(None, "--depth", help="Hidden layers of the MLPs; repeatable "
                                              f"(default {' '.join(map(str, DEFAULT_DEPTHS))})."),
    init_scale: Optional[List[float]] = typer.Option(
        None, "--init-scale", help=f"Multiplier on the Kaiming init; repeatable (default "
                                   f"{' '.join(map(str, DEFAULT_INIT_SCALES))})."),
    replicates: int = typer.Option(DEFAULT_REPLICATES, "--replicates", "-r", help="Seeds 0..R-1 per setting."),
    width: int = typer.Option(DEFAULT_WIDTH, "--width", help="Hidden width of the MLPs."),
    points: int = typer.Option(100, "--points", help="Evenly spaced α in [0, 1] per line."),
    split: str = typer.Option("train", "--split", help="train (the paper's choice) or test."),
    conv_init_scale: Optional[List[float]] = typer.Option(None, "--conv-init-scale", help="Also the registry convnet "
                                                          "for the data (conv1d or convnet6) at this init scale; "
                                                          "repeatable (default: no convnets)."),
    hold: str = typer.Option("end", "--hold", help="Where scheme `weights` holds the biases: end or start."),
    steps: Optional[str] = typer.Option(None, "--steps", help=f"Training cap (default {TRAIN['steps']})."),
    stop_at_train_error: Optional[float] = typer.Option(
        None, "--stop-at-train-error", help=f"Convergence target (default {TRAIN['stop_at_train_error']}; 0: no "
                                            "stop, train for --steps)."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"SGD learning rate (default {TRAIN['lr']})."),
    momentum: Optional[float] = typer.Option(None, "--momentum", help=f"(default {TRAIN['momentum']})."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size",
                                             help=f"(default {TRAIN['batch_size']}; 0: full batch)."),
    out: Path = typer.Option(Path("results/mli_plateau"), "--out", help="Output directory."),
    runtime: Runtime = None,
):
    """Wang et al. 2023: the plateau on the init → final line, per depth × init scale cell, with and without
    biases and with homogeneous bias schemes; verdicts inside and outside the paper's (small-init) regime.

    \b
    Examples:
      losspath reproduce mli-plateau
      losspath reproduce mli-plateau --data mnist1d --depth 4 --init-scale 0.25 --init-scale 1 -r 5
    """
    given = dict(steps=steps, stop_at_train_error=stop_at_train_error, lr=lr, momentum=momentum,
                 batch_size=batch_size)
    result = run_study(data or DEFAULT_DATA, depths=depth or DEFAULT_DEPTHS,
                       init_scales=init_scale or DEFAULT_INIT_SCALES, replicates=replicates, width=width,
                       points=points, split=split, hold=hold, conv_init_scales=conv_init_scale or (),
                       train_overrides={k: v for k, v in given.items() if v is not None}, out=out, runtime=runtime)
    echo_result(result, out, "curves.csv, summary.csv, biases.csv, runs.csv")


app = study_app(cli)
