"""One short recipe per paper: each composes hparams → train → lines → metrics → plots.

Each study module has a typer-annotated `cli` and `app = study_app(cli)`; `losspath reproduce NAME` imports the
module when it runs and hands `app` the arguments.
"""
import functools

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


def study_app(cli) -> typer.Typer:
    """The typer app that parses a study's options and runs its `cli`."""
    app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)

    @functools.wraps(cli)  # typer reads the options from cli's signature
    def checked(**options):
        check_shared_options(options)
        return cli(**options)

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
