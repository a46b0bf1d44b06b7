"""The `losspath` command: train, runs, line, report, reproduce. User mistakes print one sentence and exit 2."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

try:  # recent typer carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError

from .cli_options import dataclass_options
from .errors import LosspathError
from .hparams import Hparams
from .studies import STUDIES, summary as study_summary
from .studies.harness import DATA_ROOT_OPTION as DataRootOpt, DEVICE_OPTION as DeviceOpt, QUIET_OPTION as QuietOpt, \
    ROOT_OPTION as RootOpt, THREADS_OPTION

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Loss and error along straight lines between network states.")

PlotOpt = typer.Option(None, "--plot", help="Draw the figure (PNG and PDF).")
# compute options (losspath.compute_options): recorded with a run, not part of its hash; all off is exact float32
Tf32Opt = typer.Option(False, "--tf32", help="CUDA only: TF32 matmuls and convolutions (default: exact float32).")
Bf16Opt = typer.Option(False, "--bf16", help="bfloat16 autocast for the forward passes (changes the numbers; on "
                       "the CPU it runs too, usually slower than float32).")
ChannelsLastOpt = typer.Option(False, "--channels-last", help="NHWC layout, for networks with 2-D convolutions.")
# the Hparams fields `train` takes, in the order of its help; PAPER_FIELDS default to the paper's settings
TRAIN_FIELDS = ("dataset", "model", "steps", "seed", "data_seed", "lr", "momentum", "weight_decay", "batch_size",
                "milestones", "gamma", "warmup", "init_scale", "bias_init", "activation", "bias", "augment",
                "checkpoints", "stop_at_train_error")
PAPER_FIELDS = ("steps", "lr", "momentum", "weight_decay", "batch_size", "milestones", "gamma", "warmup")


@app.command()
@dataclass_options(Hparams, TRAIN_FIELDS, flags={"dataset": "--data"}, unset=PAPER_FIELDS)
def train(
    root: Optional[Path] = RootOpt,
    data_root: Optional[Path] = DataRootOpt,
    device: Optional[str] = DeviceOpt,
    nproc: int = typer.Option(1, "--nproc", help="Processes for DistributedDataParallel (one per GPU; gloo on CPU)."),
    threads: int = THREADS_OPTION,
    tf32: bool = Tf32Opt,
    bf16: bool = Bf16Opt,
    channels_last: bool = ChannelsLastOpt,
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the training step (first iterations "
                                  "compile for tens of seconds)."),
    quiet: bool = QuietOpt,
    **fields,
):
    """Train a network with a dense checkpoint schedule (or reuse the finished run) and print its directory.

    Examples:
      losspath train --data mnist1d --model lenet_300_100 --steps 2ep --seed 0
      losspath train --data imagenet --model imagenet_resnet_50 --data-root ~/data --nproc 8
    """
    from .compute_options import ComputeOptions
    from .hparams import paper_defaults
    from .training import train as train_run

    # the PAPER_FIELDS not given come from the paper's settings for the network, then from Hparams' defaults
    hp = Hparams(**{**paper_defaults(fields["model"]), **{k: v for k, v in fields.items() if v is not None}})
    from .runtime import torch_threads

    with torch_threads(threads):
        run = train_run(hp, root=root, data_root=data_root, progress=not quiet, device=device, nproc=nproc,
                        options=ComputeOptions(tf32=tf32, bf16=bf16, channels_last=channels_last, compile=compile_))
    done = run.done()
    typer.echo(f"test error {done['test_error']:.4f}, test loss {done['test_loss']:.4f}"
               + (f"; {'converged' if done['converged'] else 'NOT converged'} at iteration {done['last_step']}: "
                  f"{done['stop_reason']}" if "converged" in done else ""), err=True)
    typer.echo(str(run.dir))


@app.command()
def runs(root: Optional[Path] = RootOpt):
    """List the runs in the store: state, saved checkpoints, data set, model, test error, date of the last
    change, what trained it (torch threads, device, torch version) and the other non-default hyperparameters.

    Example: losspath runs --root ~/.losspath/runs
    """
    from .compute_options import describe
    from .store import default_root, list_runs

    rows = list_runs(root)
    if not rows:
        typer.echo(f"no runs under {root or default_root()}")
        return
    for r in rows:
        error = "-" if r["test_error"] is None else f"{r['test_error']:.4f}"
        rest = " ".join(f"{k}={v}" for k, v in r["rest"].items())
        m = r["made_with"]
        made = f"{m['threads']}t {m['device']} torch {m['torch']}{describe(m)}" if m else "-"
        typer.echo(f"{r['run']}  {r['state']:8s} {r['saved']:3d} ckpts  {r['dataset']:8s} {r['model']:16s} "
                   f"test error {error:6s} {r['date']}  {made}  {rest}".rstrip())


@app.command()
def line(
    start: str = typer.Argument(..., metavar="START", help="RUN_DIR@STEP (0, 2ep, 100it, last) or a checkpoint file."),
    end: str = typer.Argument(..., metavar="END", help="RUN_DIR@STEP or a checkpoint file."),
    split: str = typer.Option("test", "--split", help="test or train."),
    points: int = typer.Option(100, "--points", help="Evenly spaced α in [0, 1]."),
    scheme: str = typer.Option("all", "--scheme", help="all, weights, biases, homogeneous, homogeneous_output, or comma-separated name prefixes."),
    batchnorm: str = typer.Option("interpolate", "--batchnorm", help="interpolate, recompute, start or end."),
    model: Optional[str] = typer.Option(None, "--model", help="Network name, or your own MODULE:FUNCTION returning "
                                        "an nn.Module; needed for checkpoint files."),
    data: Optional[str] = typer.Option(None, "--data", help="Data set name, or your own MODULE:FUNCTION returning "
                                       "the data; needed for checkpoint files."),
    loss: str = typer.Option("cross_entropy", "--loss", help="cross_entropy, mse or lm_cross_entropy."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the curve as CSV (alpha, loss, metrics, "
                                       "undefined, undefined_reason)."),
    plot: Optional[Path] = PlotOpt,
    data_root: Optional[Path] = DataRootOpt,
    device: Optional[str] = DeviceOpt,
    threads: int = THREADS_OPTION,
    tf32: bool = Tf32Opt,
    bf16: bool = Bf16Opt,
    channels_last: bool = ChannelsLastOpt,
    quiet: bool = QuietOpt,
):
    """Loss and error along the straight line from START to END; prints the curve's summary metrics.

    \b
    Examples:
      losspath line ~/.losspath/runs/train_ab12@0 ~/.losspath/runs/train_ab12@last --plot init.png
      losspath line a.safetensors b.safetensors --model lenet_300_100 --data mnist1d --scheme weights
      losspath line pre.pt tuned.pt --model mylm:build --data mylm:texts --loss lm_cross_entropy
    """
    from .compute_options import ComputeOptions
    from .line_command import line_command
    from .runtime import torch_threads

    with torch_threads(threads):
        result = line_command(start, end, split=split, points=points, scheme=scheme, batchnorm=batchnorm,
                              model=model, data=data, out=out, plot=plot, data_root=data_root, device=device,
                              progress=not quiet, loss=loss,
                              options=ComputeOptions(tf32=tf32, bf16=bf16, channels_last=channels_last))
    for key, value in result.summary().items():
        typer.echo(f"{key:24s} {value}")


@app.command()
def plane(
    refs: list[str] = typer.Argument(..., metavar="RUN_OR_STATES...", help="A run directory (its trajectory "
                                     "plane), three states (the plane through them) or one state (a random "
                                     "filter-normalized plane around it); states are RUN_DIR@STEP or files."),
    points: int = typer.Option(21, "--points", help="Grid points per axis."),
    split: str = typer.Option("test", "--split", help="test or train."),
    batchnorm: str = typer.Option("interpolate", "--batchnorm", help="interpolate, recompute or origin."),
    margin: float = typer.Option(0.25, "--margin", help="Grid margin beyond the states, as a fraction of their span."),
    extent: float = typer.Option(1.0, "--extent", help="A random plane's grid spans [-extent, extent]²."),
    seed: int = typer.Option(0, "--seed", help="Seed of a random plane's directions."),
    model: Optional[str] = typer.Option(None, "--model", help="Network name; needed for checkpoint files."),
    data: Optional[str] = typer.Option(None, "--data", help="Data set name; needed for checkpoint files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the grid as CSV (a, b, loss, error, undefined, "
                                       "undefined_reason; a trajectory's coordinates to OUT_path.csv)."),
    plot: Optional[Path] = PlotOpt,
    data_root: Optional[Path] = DataRootOpt,
    device: Optional[str] = DeviceOpt,
    threads: int = THREADS_OPTION,
    quiet: bool = QuietOpt,
):
    """Loss and error over a plane of network states (origin + a·u + b·v on a grid).

    \b
    Examples:
      losspath plane ~/.losspath/runs/train_ab12 --plot trajectory.png --out trajectory.csv
      losspath plane RUN_A@last RUN_B@last RUN_C@last --points 31 --plot three.png
      losspath plane RUN_A@last --extent 1 --seed 0 --plot random.png
    """
    import numpy as np

    from .planes.command import plane_command
    from .runtime import torch_threads

    with torch_threads(threads):
        result, _ = plane_command(refs, points=points, split=split, batchnorm=batchnorm, margin=margin,
                                  extent=extent, seed=seed, model=model, data=data, out=out, plot=plot,
                                  data_root=data_root, device=device, progress=not quiet)
    defined = ~result.undefined
    best = np.unravel_index(np.nanargmin(np.where(defined, result.loss, np.inf)), result.loss.shape)
    typer.echo(f"{result.loss.size} points ({int(result.undefined.sum())} undefined); lowest loss "
               f"{result.loss[best]:.4g} (error {result.error[best]:.4g}) at a={result.a_values[best[0]]:.4g}, "
               f"b={result.b_values[best[1]]:.4g}")


@app.command()
def align(
    state_a: str = typer.Argument(..., metavar="A", help="RUN_DIR@STEP or a checkpoint file: the reference."),
    state_b: str = typer.Argument(..., metavar="B", help="RUN_DIR@STEP or a checkpoint file: the state to permute."),
    out: Path = typer.Option(..., "--out", help="Where to write B permuted to match A (.safetensors)."),
    method: str = typer.Option("weight", "--method", help="weight (Git Re-Basin weight matching) or activation "
                               "(correlation of activations on the first 1000 training examples)."),
    model: Optional[str] = typer.Option(None, "--model", help="Network name, needed for checkpoint files."),
    data: Optional[str] = typer.Option(None, "--data", help="Data set, needed for checkpoint files."),
    data_root: Optional[Path] = DataRootOpt,
    threads: int = THREADS_OPTION,
):
    """Permute B's hidden units to match A's (the same function as B, closer to A) and write it.

    \b
    Examples:
      losspath align ~/.losspath/runs/train_ab12@last ~/.losspath/runs/train_cd34@last --out b_aligned.safetensors
      losspath align a.safetensors b.safetensors --model mlp_512_512_512 --data mnist5k --method activation --out p.safetensors
    """
    from .align.command import align_command
    from .runtime import torch_threads

    with torch_threads(threads):
        result = align_command(state_a, state_b, out, method=method, model=model, data=data, data_root=data_root)
    typer.echo(f"permuted {result['groups']} groups of hidden units; parameter distance to A "
               f"{result['before']:.4g} → {result['after']:.4g}; wrote {out}")


@app.command()
def report(
    directory: Path = typer.Argument(..., metavar="DIR", help="A study output directory (its CSVs and figures)."),
    title: Optional[str] = typer.Option(None, "--title", help="Page title (default: from study.json or DIR's name)."),
):
    """Write DIR/report.html — settings, findings, figures and tables in one self-contained page — and print
    its path.

    \b
    Examples:
      losspath report results/frankle2020
      losspath report results/mli_plateau --title "MLI plateau, 3 seeds"
    """
    from .report import write_report

    typer.echo(str(write_report(directory, title=title)))


reproduce = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Reproduce a paper's experiments with one command.")
app.add_typer(reproduce, name="reproduce")

# --- study commands: each study module defines a typer-annotated `cli` function and an `app` running it --


def _lazy_study(module: str, summary: str):
    """A `reproduce` command that imports the study module only when it runs (its own typer app parses the
    arguments, --help included), so `losspath --help` does not import it."""
    def command(ctx: typer.Context):
        import importlib

        study = importlib.import_module(f"{__package__}.studies.{module}")
        code = study.app(args=list(ctx.args), prog_name=ctx.command_path, standalone_mode=False)
        if isinstance(code, int) and code:  # typer returns the exit code of a study that exits early
            raise typer.Exit(code)

    command.__doc__ = summary
    return command


_LAZY = dict(context_settings=dict(ignore_unknown_options=True, allow_extra_args=True), add_help_option=False)
for _name, _module in STUDIES.items():
    reproduce.command(_name, short_help=study_summary(_name), **_LAZY)(_lazy_study(_module, study_summary(_name)))
# --- end of study commands ----------------------------------------------------------------------------


class Interrupted(BaseException):
    """Ctrl-C, raised by our own SIGINT handler: typer turns a KeyboardInterrupt into a return value in some
    versions and into an exception in others, so the CLI does not rely on either."""


def _interrupt(signum, frame):
    raise Interrupted()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes (bad flags, bad input files) print one line on stderr and exit 2; Ctrl-C
    prints how to resume and exits 130."""
    import signal
    import threading

    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGINT, _interrupt)
    try:
        code = app(args=argv, standalone_mode=False)
    except Interrupted:
        print("error: interrupted; rerun the same command to resume.", file=sys.stderr)
        raise SystemExit(130)
    except LosspathError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
    except typer.Exit as e:
        raise SystemExit(e.exit_code)
    except NoArgsIsHelpError as e:
        print(e.format_message(), file=sys.stderr)
        raise SystemExit(2)
    except ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        raise SystemExit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted; rerun the same command to resume.", file=sys.stderr)
        raise SystemExit(130)
    except OSError as e:  # what the up-front checks could not foresee: a disk that fills up, a vanished file
        where = f" {e.filename}" if e.filename else ""
        print(f"error: a file operation failed{where} ({e.strerror or e}).", file=sys.stderr)
        raise SystemExit(2)
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
    if isinstance(code, int) and code:  # typer returns some exit codes (130 for Ctrl-C in 0.29) instead of raising
        if code == 130:
            print("error: interrupted; rerun the same command to resume.", file=sys.stderr)
        raise SystemExit(code)
