"""Wang et al. 2023, "Plateau in monotonic linear interpolation — a 'biased' view of loss landscape".

Claim under test: on the line from initialization to the trained network, a long plateau in loss and error
appears when the last-layer biases differ between classes; it lengthens with depth and with a smaller
initialization scale; and moving the biases differently from the weights changes it.

For every setting (data set × network × init scale × bias / bias-free twin) and replicate: train (or reuse
the run), evaluate init → final on the training set (the paper's choice) with the schemes `all` (plain
interpolation), `homogeneous` (bias of layer ℓ moves with α^ℓ) and `weights` (biases held at an endpoint),
and record the curves (bias-free twins: `all` only, the three schemes coincide without biases),
`plateau_end` of loss and error, the final last-layer bias of every class with the
order in which the classes were learned, the class predicted most at each α, and the share of examples
predicted as the argmax of the last-layer bias on the plateau. The recipe composes the library:
Hparams → training.train → lines.run_line → metrics → plots.mli.

Heavy imports (pandas, matplotlib, the line engine) happen inside the functions so that `losspath --help` stays fast.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer

from . import THREADS_OPTION, echo_result, study_app

DEFAULT_DATA = ("mnist1d", "digits")
DEFAULT_DEPTHS = (1, 2, 4, 8)
DEFAULT_INIT_SCALES = (0.5, 1.0, 1.5)
# The convnets cost ~10× an MLP here (training and lines), so by default they run at Kaiming's scale only.
DEFAULT_CONV_INIT_SCALES = (1.0,)
SCHEMES = ("all", "homogeneous", "weights")
# Training: plain SGD with momentum, the same for every setting (no per-setting tuning); it trains the
# ReLU nets of the default sweep except the deepest ones at the smallest init scale (which stay near chance).
TRAIN = dict(lr=0.01, momentum=0.9, batch_size=128, steps="40ep")
CAPTIONS = {
    "curves_by_scheme": "Training loss and error along init → final for the deepest bias-ful MLP at the init scale "
                        "closest to 1 (replicate 0), one line per scheme; black: its bias-free twin.",
    "plateau_vs_depth": "Where the plateau ends (first α with 10% of the total drop) against depth, a line per init "
                        "scale; solid: with biases, dashed: bias-free twins; scheme all, trained nets only.",
    "plateau_vs_init_scale": "Where the plateau ends against the init scale, a line per depth and the convnet; nets "
                             "with biases, scheme all, trained nets only.",
    "last_layer_biases": "Final last-layer bias per class of the featured net; the number is the order in which the "
                         "class was learned (F1 reaching half its final value), the orange bar the largest bias.",
    "class_shares": "Share of training examples predicted as each class along the line; hatched: the argmax class of "
                    "the last-layer bias; dashed: the error plateau end.",
}
TRAINED_FRACTION = 0.5  # a net counts as trained if its final training error < 0.5 × chance error (1 − 1/K)
LEARNED_FRACTION = 0.5  # a class is learned at the first checkpoint where its F1 reaches half its final F1


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
        from ..hparams import Hparams

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
                 conv_init_scales=DEFAULT_CONV_INIT_SCALES) -> list[Setting]:
    """The sweep on data set `name` (loaded as `dataset`): ReLU MLPs of every depth × init scale × {bias,
    bias-free} × seed, and the registry convnet for the data's input shape × conv init scale × {bias,
    bias-free} × seed (none if `conv_init_scales` is empty or no convnet fits the input shape)."""
    out = []
    conv = convnet_for(dataset.input_shape)
    for seed in range(replicates):
        for scale in init_scales:
            for bias in (True, False):
                for depth in depths:
                    out.append(Setting(name, "mlp", "mlp" + f"_{width}" * depth, depth, float(scale), bias, seed))
        for scale in conv_init_scales if conv is not None else ():
            for bias in (True, False):
                out.append(Setting(name, "conv", conv[0], conv[1], float(scale), bias, seed))
    return out


def last_layer_bias(state: dict, num_classes: int):
    """The output layer's bias: the last tensor of the state whose name ends in "bias" and whose shape is
    (num_classes,), as a float64 numpy array; None for a bias-free net."""
    found = None
    for k, v in state.items():
        if k.rsplit(".", 1)[-1].endswith("bias") and tuple(v.shape) == (num_classes,):
            found = v
    return None if found is None else found.detach().double().cpu().numpy()


def class_learning_steps(run, model, split, batch_size: int = 1000):
    """For every class, the first saved iteration at which its F1 score on `split` reaches LEARNED_FRACTION of
    its final F1 (F1 rather than recall: a freshly initialized net that predicts one class everywhere has
    recall 1 on it). Returns (steps (K,), final F1 (K,)); a class never learned (final F1 = 0) gets -1."""
    import numpy as np
    import torch
    from torch.func import functional_call

    from ..checkpoints import load_state

    k = split.num_classes
    steps = run.saved_steps()
    f1s = []
    for s in steps:
        state = load_state(run.checkpoint(s))
        confusion = torch.zeros(k, k, dtype=torch.long)
        with torch.inference_mode():
            for x, y in split.batches(batch_size):
                pred = functional_call(model, state, (x,)).argmax(1)
                confusion += torch.bincount(y * k + pred, minlength=k * k).view(k, k)
        c = confusion.double().numpy()
        tp = np.diag(c)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * tp / (c.sum(0) + c.sum(1)))
        f1s.append(f1)
    f1s = np.array(f1s)
    final = f1s[-1]
    learned = np.full(k, -1, dtype=np.int64)
    for c in range(k):
        if final[c] > 0:
            learned[c] = steps[int(np.argmax(f1s[:, c] >= LEARNED_FRACTION * final[c]))]
    return learned, final


def plateau_without_init(alphas, loss, error) -> dict:
    """`metrics.plateau_end` of loss and error measured from the first α > 0 instead of from α = 0.

    The point α = 0 is the random initialization itself: its predictions are unrelated to those on the plateau
    (where a small-init net predicts the argmax-bias class everywhere), so an init error above the plateau's
    level makes `plateau_end` stop at the first grid point. Both versions go into summary.csv.
    """
    import numpy as np

    from ..metrics import plateau_end

    keep = np.asarray(alphas) > 0
    return dict(loss_plateau_end_no_init=plateau_end(np.asarray(alphas)[keep], np.asarray(loss)[keep]),
                error_plateau_end_no_init=plateau_end(np.asarray(alphas)[keep], np.asarray(error)[keep]))


def plateau_share(alphas, shares, end: float) -> float:
    """Mean of `shares` over the plateau: the α with 0 < α < `end` (NaN when there is none)."""
    import numpy as np

    a = np.asarray(alphas)
    on = (a > 0) & (a < end) if np.isfinite(end) else np.zeros(len(a), bool)
    return float(np.mean(np.asarray(shares)[on])) if on.any() else math.nan


def run_study(data=DEFAULT_DATA, *, depths=DEFAULT_DEPTHS, init_scales=DEFAULT_INIT_SCALES, replicates: int = 1,
              width: int = 64, points: int = 100, split: str = "train", conv_init_scales=DEFAULT_CONV_INIT_SCALES,
              hold: str = "end", train_overrides: dict | None = None, out: str | Path = "results/mli_plateau",
              root=None, data_root=None, device=None, progress: bool = True, figures: bool = True) -> dict:
    """Run (or reuse) the sweep and write curves.csv, summary.csv, biases.csv, runs.csv, findings.txt and
    (unless figures=False) the figures under `out`. Returns the tables (pandas), the figure paths, the printed
    text and the wall time."""
    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm

    from ..checkpoints import atomic_write_text, load_state
    from ..data import load_dataset
    from ..errors import LosspathError, TrainingDiverged
    from ..lines import run_line
    from ..metrics import summarize
    from ..training import evaluate, model_for, train

    # Check everything a user can get wrong before anything is trained or written.
    depths, init_scales = [int(d) for d in depths], [float(s) for s in init_scales]
    data = [str(n).strip().lower() for n in data]
    if not data:
        raise LosspathError("Give at least one data set (--data).")
    if not depths or min(depths) < 1:
        raise LosspathError(f"Depths (hidden layers) must be integers of at least 1, got {depths}.")
    conv_init_scales = [float(s) for s in conv_init_scales]
    if not init_scales or not all(math.isfinite(s) and s > 0 for s in init_scales + conv_init_scales):
        raise LosspathError(f"Init scales must be positive numbers, got {init_scales + conv_init_scales}.")
    if replicates < 1 or width < 1 or points < 3:
        raise LosspathError("--replicates and --width must be at least 1 and --points at least 3.")
    if split not in ("train", "test"):
        raise LosspathError(f"Unknown split {split!r}; use 'train' or 'test'.")
    if hold not in ("start", "end"):
        raise LosspathError(f"Unknown --hold {hold!r}; use 'end' or 'start'.")
    training = dict(TRAIN, **(train_overrides or {}))
    datasets = {name: load_dataset(name, data_root) for name in dict.fromkeys(data)}

    started = time.time()
    out = Path(out)
    jobs = [s for name, d in datasets.items() for s in settings_for(name, d, depths=depths, init_scales=init_scales,
                                                                    replicates=replicates, width=width,
                                                                    conv_init_scales=conv_init_scales)]
    curves, summary, biases, runs, featured = [], [], [], [], {}
    for s in tqdm(jobs, desc="mli-plateau", unit="net", disable=None if progress else True):
        t0 = time.time()
        d = datasets[s.dataset]
        hp = s.hparams(training)
        k = d.num_classes
        try:
            run = train(hp, root=root, dataset=d, progress=progress, device=device)
        except TrainingDiverged:
            runs.append(dict(**s.row(), run=hp.run_id(), status="diverged"))
            continue
        model = model_for(hp, d)
        last = run.done()["last_step"]
        end_state = load_state(run.checkpoint(last))
        model.load_state_dict(end_state)
        train_error = evaluate(model, d.train)[1]
        trained = train_error < TRAINED_FRACTION * (1 - 1 / k)
        runs.append(dict(**s.row(), run=run.dir.name, status="trained" if trained else "not trained",
                         train_error=train_error, test_error=run.done()["test_error"], last_step=last))
        b = last_layer_bias(end_state, k)
        learned, f1 = class_learning_steps(run, model, d.train)
        ranks = pd.Series(np.where(learned < 0, np.inf, learned)).rank(method="min").to_numpy()
        for c in range(k):
            biases.append(dict(**s.row(), cls=c, bias_value=np.nan if b is None else b[c],
                               learned_step=int(learned[c]), learned_rank=int(ranks[c]) if learned[c] >= 0 else -1,
                               final_f1=f1[c]))
        top = int(np.argmax(b)) if b is not None else -1
        # Without biases the three schemes are the same line (tests/test_lines.py checks homogeneous == all),
        # so a bias-free twin is evaluated, and listed, under `all` only.
        for scheme in SCHEMES if s.bias else ("all",):
            line = run_line(run, model, d, 0, last, split=split, points=points, scheme=scheme, hold=hold,
                            device=device)
            n = max(line.num_examples, 1)
            shares = line.class_counts / n
            bias_share = shares[:, top] if top >= 0 else np.full(len(line.alphas), np.nan)
            curves.append(pd.DataFrame(dict(**{c: [v] * len(line.alphas) for c, v in s.row().items()},
                                            scheme=scheme, split=split, alpha=line.alphas, loss=line.loss,
                                            error=line.error, dominant_class=shares.argmax(1),
                                            dominant_share=shares.max(1), bias_argmax_share=bias_share)))
            m = summarize(line.alphas, line.loss, "loss") | summarize(line.alphas, line.error, "error")
            m |= plateau_without_init(line.alphas, line.loss, line.error)
            summary.append(dict(**s.row(), scheme=scheme, split=split, trained=trained, train_error=train_error,
                                test_error=run.done()["test_error"], start_error=line.error[0],
                                end_error=line.error[-1], **m,
                                bias_argmax_class=top, bias_spread=np.nan if b is None else float(b.max() - b.min()),
                                bias_argmax_share_plateau=plateau_share(line.alphas, bias_share,
                                                                        m["error_plateau_end"]),
                                dominant_share_plateau=plateau_share(line.alphas, shares.max(1),
                                                                     m["error_plateau_end"]),
                                distance=line.distance))
            if s.family == "mlp" and s.seed == 0:
                featured.setdefault((s.dataset, s.depth, s.init_scale, s.bias), {})[scheme] = shares
        runs[-1]["seconds"] = round(time.time() - t0, 2)
    if not summary:
        raise LosspathError("Every run diverged; lower the learning rate (--lr).")

    tables = dict(curves=pd.concat(curves, ignore_index=True), summary=pd.DataFrame(summary),
                  biases=pd.DataFrame(biases), runs=pd.DataFrame(runs))
    out.mkdir(parents=True, exist_ok=True)
    for key, frame in tables.items():
        atomic_write_text(out / f"{key}.csv", frame.to_csv(index=False))
    if figures:
        from ..plots.mli import draw_plateau_study

        figures = draw_plateau_study(tables, featured, out)
    else:
        figures = []
    text = describe(tables, split=split, hold=hold)
    atomic_write_text(out / "findings.txt", text + "\n")
    seconds = time.time() - started
    from ..report import write_report, write_study_metadata

    write_study_metadata(out, study="mli-plateau", title="MLI plateau: the biased view (Wang et al. 2023)",
                         settings=dict(training=training, width=width, replicates=replicates),
                         options=dict(data=data, depths=depths, init_scales=init_scales,
                                      conv_init_scales=conv_init_scales, points=points, split=split, hold=hold),
                         seconds=seconds, device=device, captions=CAPTIONS,
                         summary_keys=["dataset", "family", "model", "depth", "init_scale", "bias", "scheme"])
    return dict(**tables, figures=figures, text=text, seconds=seconds, report=write_report(out))


def _rank_corr(x, y) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 points or no spread."""
    import pandas as pd

    frame = pd.DataFrame(dict(x=x, y=y)).dropna()
    if len(frame) < 3 or frame.x.nunique() < 2 or frame.y.nunique() < 2:
        return math.nan
    return float(frame.x.rank().corr(frame.y.rank()))


def describe(tables: dict, split: str = "train", hold: str = "end") -> str:
    """The printed summary: what the runs show, checked against each of the paper's claims in turn."""
    s, runs = tables["summary"], tables["runs"]
    lines = [f"MLI plateau (Wang et al. 2023): {len(runs)} networks, lines init → final on the {split} set; "
             f"plateau end = first α where the curve has fallen by 10% of its total drop."]
    diverged = runs[runs.status == "diverged"]
    if len(diverged):
        lines.append("  diverged (no line): " + ", ".join(
            f"{r.dataset}/{r.model}×{r.init_scale:g}{'' if r.bias else ' (no bias)'}" for r in diverged.itertuples()))
    for name, per in s.groupby("dataset", sort=False):
        r = runs[(runs.dataset == name) & (runs.status != "diverged")]
        untrained = r[r.status == "not trained"]
        lines.append(f"{name}: train error {r.train_error.min():.3f}–{r.train_error.max():.3f}, test error "
                     f"{r.test_error.min():.3f}–{r.test_error.max():.3f} "
                     f"(accuracy up to {1 - r.test_error.min():.3f}); "
                     f"{len(untrained)} of {len(r)} nets not trained (excluded below): "
                     + (", ".join(f"{u.model}×{u.init_scale:g}{'' if u.bias else ' nobias'}"
                                  for u in untrained.itertuples()) or "none"))
        ok = per[per.trained]
        allb = ok[(ok.scheme == "all") & ok.bias]
        mlp = allb[allb.family == "mlp"]
        if mlp.empty:
            continue
        table = mlp.groupby(["depth", "init_scale"]).error_plateau_end.mean().unstack()
        lines.append("  error plateau end (scheme all, bias-ful MLPs), rows depth, columns init scale:")
        lines.append("    " + "depth " + " ".join(f"{c:>6g}" for c in table.columns))
        for depth, row in table.iterrows():
            lines.append("    " + f"{depth:5d} " + " ".join(f"{v:6.2f}" for v in row.to_numpy()))
        rho_d = _rank_corr(mlp.depth, mlp.error_plateau_end)
        rho_s = _rank_corr(mlp.init_scale, mlp.error_plateau_end)
        rho_dl = _rank_corr(mlp.depth, mlp.loss_plateau_end)
        rho_sl = _rank_corr(mlp.init_scale, mlp.loss_plateau_end)
        lines.append(f"  deeper → longer plateau? Spearman ρ(depth, plateau end) = {rho_d:+.2f} for error: "
                     f"{_verdict(rho_d, +1)}; {rho_dl:+.2f} for loss: {_verdict(rho_dl, +1)}")
        lines.append(f"  smaller init → longer plateau? ρ(init scale, plateau end) = {rho_s:+.2f} for error: "
                     f"{_verdict(rho_s, -1)}; {rho_sl:+.2f} for loss: {_verdict(rho_sl, -1)}")
        free = ok[(ok.scheme == "all") & ~ok.bias & (ok.family == "mlp")]
        pair = mlp.merge(free, on=["depth", "init_scale", "replicate"], suffixes=("", "_free"))
        if len(pair):
            longer = (pair.error_plateau_end > pair.error_plateau_end_free + 1e-9).mean()
            gap = float((pair.error_plateau_end - pair.error_plateau_end_free).mean())
            lines.append(f"  bias-free twins: mean error plateau end {pair.error_plateau_end_free.mean():.2f} vs "
                         f"{pair.error_plateau_end.mean():.2f} with biases "
                         f"(loss {pair.loss_plateau_end_free.mean():.2f}"
                         f" vs {pair.loss_plateau_end.mean():.2f}); the bias-ful net's error plateau is longer in "
                         f"{longer:.0%} of {len(pair)} pairs: "
                         + ("the biases lengthen the plateau, as the paper says" if gap > 0.05 else
                            "the biases do NOT lengthen the plateau here (the paper says they cause it)"))
        for scheme in ("homogeneous", "weights"):
            other = ok[(ok.scheme == scheme) & ok.bias & (ok.family == "mlp")]
            pair = mlp.merge(other, on=["depth", "init_scale", "replicate"], suffixes=("", "_o"))
            if len(pair):
                lines.append(f"  scheme {scheme}{' (biases held at the ' + hold + ')' if scheme == 'weights' else ''}: "
                             f"mean error plateau end {pair.error_plateau_end_o.mean():.2f} vs "
                             f"{pair.error_plateau_end.mean():.2f} for all; loss {pair.loss_plateau_end_o.mean():.2f} "
                             f"vs {pair.loss_plateau_end.mean():.2f}")
        share = mlp.bias_argmax_share_plateau
        deep = mlp[mlp.depth == mlp.depth.max()]
        lines.append(f"  on the error plateau (0 < α < plateau end, scheme all) a mean {share.mean():.0%} of examples "
                     f"are predicted as the argmax of the last-layer bias ({share.notna().sum()} nets with a "
                     f"plateau point; deepest nets: {deep.bias_argmax_share_plateau.mean():.0%}); mean bias spread "
                     f"max−min {mlp.bias_spread.mean():.3f}")
        conv = allb[allb.family == "conv"]
        if len(conv):
            by_scale = conv.groupby("init_scale").error_plateau_end.mean()
            lines.append(f"  convnet {conv.model.iloc[0]}: error plateau end by init scale "
                         + ", ".join(f"{k:g}: {v:.2f}" for k, v in by_scale.items())
                         + f"; argmax-bias share on the plateau {conv.bias_argmax_share_plateau.mean():.0%}")
        b = tables["biases"]
        b = b[(b.dataset == name) & b.bias & (b.family == "mlp") & (b.learned_rank > 0)]
        groups = [g for _, g in b.groupby(["model", "init_scale", "replicate"]) if len(g)]
        hits = [g.loc[g.bias_value.idxmax(), "learned_rank"] == g.learned_rank.max() for g in groups]
        chance = sum(float((g.learned_rank == g.learned_rank.max()).mean()) for g in groups)
        if hits:
            lines.append(f"  the class with the largest last-layer bias was learned last (ties included) in "
                         f"{sum(hits)}/{len(hits)} bias-ful MLPs; a random class would be in {chance:.1f}/{len(hits)}")
    return "\n".join(lines)


def _verdict(rho: float, expected_sign: int) -> str:
    if not math.isfinite(rho):
        return "not measurable here"
    if abs(rho) < 0.2:
        return "no clear trend (the paper predicts one)"
    return "agrees with the paper" if rho * expected_sign > 0 else "OPPOSITE to the paper"


def cli(
    data: Optional[List[str]] = typer.Option(None, "--data", help="Repeatable; default mnist1d and digits "
                                             "(mnist, cifar10 from --data-root)."),
    depth: Optional[List[int]] = typer.Option(None, "--depth", help="Hidden layers of the MLPs; repeatable "
                                              f"(default {' '.join(map(str, DEFAULT_DEPTHS))})."),
    init_scale: Optional[List[float]] = typer.Option(
        None, "--init-scale", help=f"Multiplier on the Kaiming init; repeatable (default "
                                   f"{' '.join(map(str, DEFAULT_INIT_SCALES))})."),
    replicates: int = typer.Option(1, "--replicates", "-r", help="Seeds 0..R-1 per setting."),
    width: int = typer.Option(64, "--width", help="Hidden width of the MLPs."),
    points: int = typer.Option(100, "--points", help="Evenly spaced α in [0, 1] per line."),
    split: str = typer.Option("train", "--split", help="train (the paper's choice) or test."),
    convnets: bool = typer.Option(True, "--convnets/--no-convnets", help="Also the registry convnet per data set "
                                  "(conv1d for 1-D inputs, convnet6 for images)."),
    conv_init_scale: Optional[List[float]] = typer.Option(None, "--conv-init-scale", help="Init scales of the "
                                                          "convnets; repeatable (default 1.0)."),
    hold: str = typer.Option("end", "--hold", help="Where scheme `weights` holds the biases: end or start."),
    steps: Optional[str] = typer.Option(None, "--steps", help=f"Training length (default {TRAIN['steps']})."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"SGD learning rate (default {TRAIN['lr']})."),
    momentum: Optional[float] = typer.Option(None, "--momentum", help=f"(default {TRAIN['momentum']})."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size",
                                             help=f"(default {TRAIN['batch_size']}; 0: full batch)."),
    out: Path = typer.Option(Path("results/mli_plateau"), "--out", help="Output directory."),
    root: Optional[Path] = typer.Option(None, "--root", help="Run store (default $LOSSPATH_HOME)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data sets (default $LOSSPATH_DATA)."),
    device: Optional[str] = typer.Option(None, "--device"),
    threads: Optional[int] = THREADS_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Wang et al. 2023: the plateau on the init → final line vs depth, init scale and bias scheme.

    \b
    Examples:
      losspath reproduce mli-plateau
      losspath reproduce mli-plateau --data mnist --data-root ~/data --depth 1 --depth 4 --depth 8 -r 3
    """
    overrides = {k: v for k, v in dict(steps=steps, lr=lr, momentum=momentum, batch_size=batch_size).items()
                 if v is not None}
    from ..sweeps import torch_threads

    with torch_threads(threads):
        result = run_study(data or DEFAULT_DATA, depths=depth or DEFAULT_DEPTHS,
                           init_scales=init_scale or DEFAULT_INIT_SCALES,
                           replicates=replicates, width=width, points=points, split=split, hold=hold,
                           conv_init_scales=(conv_init_scale or DEFAULT_CONV_INIT_SCALES) if convnets else (),
                           train_overrides=overrides, out=out, root=root, data_root=data_root, device=device,
                           progress=not quiet)
    echo_result(result, out, "curves.csv, summary.csv, biases.csv, runs.csv")


app = study_app(cli)
