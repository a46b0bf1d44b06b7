"""One short recipe per paper: each composes hparams → train → lines → metrics → plots.

Each study module has a typer-annotated `cli` and `app = study_app(cli)`; `losspath reproduce NAME` imports the
module when it runs and hands `app` the arguments.
"""
import typer

THREADS_OPTION = typer.Option(None, "--threads", help="Torch threads (default: torch's choice; 1 is often fastest "
                              "on a machine other jobs share).")


def study_app(cli) -> typer.Typer:
    """The typer app that parses a study's options and runs its `cli`."""
    app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
    app.command()(cli)
    return app


def echo_result(result: dict, out, tables: str) -> None:
    """Print a study's findings, what it wrote to `out` (`tables`: the table files) and its report's path."""
    typer.echo(result["text"])
    typer.echo(f"wrote {out}/{tables} and {len(result['figures'])} figure files in {result['seconds']:.0f} s")
    typer.echo(f"report: {result['report']}")
