"""Options generated from dataclass fields (cli_options): flags, types, defaults and help read from the field."""
from dataclasses import dataclass, field

import typer
from typer.testing import CliRunner

from losspath.cli import app
from losspath.cli_options import dataclass_options


@dataclass(frozen=True)
class Knobs:
    name: str = field(default="a", metadata={"help": "The name."})
    count: int = 3
    rate: float | None = None
    loud: bool = True
    at: tuple[int, ...] = (0, 5)


def app_of(function) -> typer.Typer:
    one = typer.Typer(add_completion=False)
    one.command()(function)
    return one


def test_one_option_per_field_with_its_flag_default_and_help():
    seen = {}

    @dataclass_options(Knobs, flags={"name": "--label"}, unset=("count",), after="first")
    def command(first: int = typer.Option(1, "--first"), last: int = typer.Option(2, "--last"), **fields):
        seen.update(fields, first=first, last=last)

    params = {p.name: p for p in typer.main.get_command(app_of(command)).params}
    assert list(params) == ["first", "name", "count", "rate", "loud", "at", "last"]
    assert params["name"].opts == ["--label"] and params["name"].default == "a" and params["name"].help == "The name."
    assert params["count"].opts == ["--count"] and params["count"].default is None and params["count"].help is None
    assert params["loud"].opts == ["--loud"] and params["loud"].secondary_opts == ["--no-loud"]
    assert params["at"].default == "0,5" and params["rate"].default is None

    result = CliRunner().invoke(app_of(command), ["--label", "b", "--count", "7", "--rate", "0.5", "--no-loud",
                                                     "--at", "1,2", "--last", "9"])
    assert result.exit_code == 0, result.output
    assert seen == dict(name="b", count=7, rate=0.5, loud=False, at="1,2", first=1, last=9)


def test_train_takes_the_hparams_fields_under_their_old_flags():
    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    assert [p for p in params][:19] == ["dataset", "model", "steps", "seed", "data_seed", "lr", "momentum",
                                        "weight_decay", "batch_size", "milestones", "gamma", "warmup", "init_scale",
                                        "bias_init", "activation", "bias", "augment", "checkpoints",
                                        "stop_at_train_error"]
    assert params["dataset"].opts == ["--data"] and params["dataset"].default == "mnist1d"
    assert params["lr"].default is None and params["steps"].default is None  # the paper's defaults fill them
    assert params["bias"].secondary_opts == ["--no-bias"] and params["seed"].help == "Initialization seed."
