"""One short recipe per paper: each composes hparams → train → lines → metrics → plots.

Each study module has a typer-annotated `cli` and `app = study_app(cli)`; `losspath reproduce NAME` imports the
module when it runs and hands `app` the arguments.
"""
import functools
import inspect
from pathlib import Path
from typing import Optional

import typer

THREADS_OPTION = typer.Option(None, "--threads", help="Torch threads (default: torch's choice; 1 is often fastest "
                              "on a machine other jobs share).")
# The runtime options every study takes, declared once.
ROOT_OPTION = typer.Option(None, "--root", help="Run store (default $LOSSPATH_HOME).")
DATA_ROOT_OPTION = typer.Option(None, "--data-root", help="Data sets (default $LOSSPATH_DATA).")
DEVICE_OPTION = typer.Option(None, "--device")
EXECUTOR_OPTION = typer.Option("local", "--executor", help="local (in-process) or dask.")
SCHEDULER_OPTION = typer.Option(None, "--scheduler", help="Dask scheduler address, tcp://HOST:PORT.")
WORKERS_OPTION = typer.Option(None, "--workers", help="Start a local Dask cluster of N workers.")
JOB_THREADS_OPTION = typer.Option(None, "--threads", help="Torch threads per job (default: all of this process's).")
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bars.")
# The runtime of a study whose jobs go to an executor: option name → (type, option). `study_app(cli, JOB_RUNTIME)`
# adds them to the study's options and hands them to `cli` as one value, `runtime`: the keyword arguments of
# run_study (root, data_root, device, executor, scheduler, workers, threads, progress).
JOB_RUNTIME = {"root": (Optional[Path], ROOT_OPTION), "data_root": (Optional[Path], DATA_ROOT_OPTION),
               "device": (Optional[str], DEVICE_OPTION), "executor": (str, EXECUTOR_OPTION),
               "scheduler": (Optional[str], SCHEDULER_OPTION), "workers": (Optional[int], WORKERS_OPTION),
               "threads": (Optional[int], JOB_THREADS_OPTION), "quiet": (bool, QUIET_OPTION)}


def study_app(cli, runtime: dict | None = None) -> typer.Typer:
    """The typer app that parses a study's options and runs its `cli`; with `runtime` (e.g. JOB_RUNTIME), those
    options are added to cli's own and reach it as one dict `runtime` (quiet becomes progress)."""
    app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
    runtime = runtime or {}

    @functools.wraps(cli)  # typer reads the options from cli's signature
    def checked(**options):
        check_shared_options(options)
        if not runtime:
            return cli(**options)
        values = {name: options.pop(name) for name in runtime}
        values["progress"] = not values.pop("quiet", False)
        return cli(**options, runtime=values)

    if runtime:
        own = [p for p in inspect.signature(cli, eval_str=True).parameters.values() if p.name != "runtime"]
        added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=kind)
                 for name, (kind, option) in runtime.items()]
        checked.__signature__ = inspect.Signature(own + added)
        checked.__annotations__ = {p.name: p.annotation for p in own + added}
    app.command()(checked)
    return app


def check_shared_options(options: dict) -> None:
    """The options every study shares, checked before any work: one sentence naming the option."""
    from ..errors import LosspathError
    from ..files import check_output_dir
    from ..limits import check_points
    from ..store import default_root
    from ..sweeps import check_threads

    if options.get("points") is not None:
        check_points(options["points"])
    if options.get("replicates") is not None and options["replicates"] < 1:
        raise LosspathError(f"--replicates must be at least 1, not {options['replicates']}.")
    check_threads(options.get("threads"))
    if "out" in options:
        check_output_dir(options["out"], "--out")
    if "root" in options:
        check_output_dir(options["root"] or default_root(), "--root")


def echo_result(result: dict, out, tables: str) -> None:
    """Print a study's findings, what it wrote to `out` (`tables`: the table files) and its report's path."""
    typer.echo(result["text"])
    typer.echo(f"wrote {out}/{tables} and {len(result['figures'])} figure files in {result['seconds']:.0f} s")
    typer.echo(f"report: {result['report']}")


def gathered(ex, jobs: dict, desc: str, progress: bool) -> dict:
    """The results of a dict of submitted jobs (key → task) from executor `ex`, under the same keys."""
    return dict(zip(jobs, ex.gather(list(jobs.values()), desc, progress)))


def write_tables(out: Path, tables: dict) -> None:
    """Each table (name → pandas frame) as `out/NAME.csv`, written atomically; `out` is created if missing."""
    from ..files import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))
