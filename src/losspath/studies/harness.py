"""What every study shares: the runtime options (declared once), the typer app around a study's `cli`, and the
epilogue `finish_study` (tables, findings, study.json, report).

A study's `cli` declares its own options plus `runtime: Runtime = None`; `study_app(cli)` adds --root,
--data-root, --device, --threads, --jobs, --executor, --scheduler, --workers and --quiet and hands them to
`cli` as one `Runtime`.
"""
from __future__ import annotations

import functools
import inspect
import time
from pathlib import Path
from typing import Optional

import typer

from ..cli_options import with_signature
from ..runtime import DEFAULT_THREADS, Runtime

THREADS_HELP = (f"Torch threads per job (default {DEFAULT_THREADS}: the nets are small, and threads that share "
                "cores with other work wait on each other; every thread count gives reproducible numbers, "
                "different ones differ in the last bits).")
THREADS_OPTION = typer.Option(DEFAULT_THREADS, "--threads", help=THREADS_HELP)
ROOT_OPTION = typer.Option(None, "--root", help="Run store (default $LOSSPATH_HOME or ~/.losspath/runs).")
DATA_ROOT_OPTION = typer.Option(None, "--data-root", help="Data sets (default $LOSSPATH_DATA or ~/.losspath/data).")
DEVICE_OPTION = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available).")
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bars.")
# The runtime options of every study: option name → (type, typer option); they reach `cli` as one Runtime.
RUNTIME_OPTIONS = {
    "root": (Optional[Path], ROOT_OPTION),
    "data_root": (Optional[Path], DATA_ROOT_OPTION),
    "device": (Optional[str], DEVICE_OPTION),
    "threads": (int, THREADS_OPTION),
    "jobs": (Optional[int], typer.Option(None, "--jobs", "-j", help="Jobs side by side in worker processes on "
                                         "this machine (default: the usable cores; 1: one after another in this "
                                         "process). Every value gives the same numbers.")),
    "executor": (str, typer.Option("local", "--executor", help="local (this machine) or dask.")),
    "scheduler": (Optional[str], typer.Option(None, "--scheduler", help="Dask scheduler address, tcp://HOST:PORT.")),
    "workers": (Optional[int], typer.Option(None, "--workers", help="Start a local Dask cluster of N workers.")),
    "quiet": (bool, QUIET_OPTION),
}


def study_app(cli) -> typer.Typer:
    """The typer app that parses a study's options plus the runtime options and runs `cli(..., runtime=...)`."""
    app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)

    @functools.wraps(cli)  # typer reads the options from the signature set below
    def checked(**options):
        values = {name: options.pop(name) for name in RUNTIME_OPTIONS}
        runtime = Runtime(progress=not values.pop("quiet"), **values).checked()
        check_shared_options(options, runtime)
        return cli(**options, runtime=runtime)

    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
             for name, (kind, option) in RUNTIME_OPTIONS.items()]
    last = [name for name in inspect.signature(cli).parameters if name != "runtime"][-1]
    app.command()(with_signature(checked, cli, added, after=last, drop=("runtime",)))
    return app


def check_shared_options(options: dict, runtime: Runtime) -> None:
    """The options every study shares, checked before any work: one sentence naming the option."""
    from ..errors import LosspathError
    from ..files import check_output_dir
    from ..limits import check_points
    from ..store import default_root

    if options.get("points") is not None:
        check_points(options["points"])
    if options.get("replicates") is not None and options["replicates"] < 1:
        raise LosspathError(f"--replicates must be at least 1, not {options['replicates']}.")
    if "out" in options:
        check_output_dir(options["out"], "--out")
    check_output_dir(runtime.root or default_root(), "--root")


def check_choice(value: str, choices, what: str) -> None:
    """One sentence when `value` is not one of `choices`: "Unknown split 'val'; use 'train' or 'test'."."""
    from ..errors import LosspathError

    if value not in choices:
        listed = [repr(c) for c in choices]
        raise LosspathError(f"Unknown {what} {value!r}; use {', '.join(listed[:-1])} or {listed[-1]}.")


def echo_result(result: dict, out, tables: str) -> None:
    """Print a study's findings, what it wrote to `out` (`tables`: the table files) and its report's path."""
    typer.echo(result["text"])
    typer.echo(f"wrote {out}/{tables} and {len(result['figures'])} figure files in {result['seconds']:.0f} s")
    typer.echo(f"report: {result['report']}")


def gathered(ex, jobs: dict, desc: str) -> dict:
    """The results of a dict of submitted jobs (key → task) from executor `ex`, under the same keys."""
    return dict(zip(jobs, ex.gather(list(jobs.values()), desc)))


def write_tables(out: Path, tables: dict) -> None:
    """Each table (name → pandas frame) as `out/NAME.csv`, written atomically; `out` is created if missing."""
    from ..files import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))


def finish_study(out: Path, *, study: str, tables: dict, figures: list, text: str, runtime: Runtime,
                 started: float, options: dict, settings: dict, captions: dict, **metadata) -> dict:
    """The epilogue of every study: the tables as CSVs, findings.txt, study.json (with the runtime) and the
    HTML report in `out`. Returns the tables with the figure paths, the text, the report's path and the wall
    time. `metadata`: title, argv, summary_keys (see report.write_study_metadata)."""
    from ..files import atomic_write_text
    from ..report import write_report, write_study_metadata

    write_tables(out, tables)
    atomic_write_text(out / "findings.txt", text + "\n")
    runtime_options = dict(threads=runtime.threads, executor=runtime.executor, jobs=runtime.jobs)
    write_study_metadata(out, study=study, settings=settings, options=dict(options, **runtime_options),
                         seconds=time.time() - started, device=runtime.device, captions=captions, **metadata)
    report = write_report(out)
    return dict(**tables, figures=figures, text=text, report=report, seconds=time.time() - started)
