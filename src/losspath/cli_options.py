"""Command-line options generated from a dataclass's fields, so a field is typed once: its name, type and
default in the dataclass, its help text beside it (`field(..., metadata={"help": ...})`).

`dataclass_options(cls, names)` decorates a typer command: one option per named field is added to the command's
signature, and the values reach the command as keyword arguments named like the fields. The rules:
  flag      --field-name (underscores become dashes); a bool field is --name/--no-name; `flags` renames.
  type      the field's; `T | None` becomes Optional[T]; a tuple field is comma-separated text (its default
            joined by commas), which the command parses.
  default   the field's; fields in `unset` default to None (the command then fills them, e.g. with a paper's
            defaults), so the option is Optional.
  help      the field's metadata["help"], if any.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from typing import Optional

import typer


def field_option(cls, name: str, *, flag: str | None = None, unset: bool = False) -> inspect.Parameter:
    """The keyword-only parameter, with its typer option as default, for field `name` of dataclass `cls`."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    kind = typing.get_type_hints(cls)[name]
    default = field.default
    args = typing.get_args(kind)
    if type(None) in args:  # T | None
        kind = Optional[next(a for a in args if a is not type(None))]
    elif typing.get_origin(kind) is tuple:
        kind, default = str, ",".join(map(str, default))
    flag = flag or "--" + name.replace("_", "-")
    if kind is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    if unset:
        kind, default = Optional[kind], None
    option = typer.Option(default, flag, help=field.metadata.get("help"))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)


def dataclass_options(cls, names=None, *, skip=(), after: str | None = None, flags: dict[str, str] | None = None,
                      unset=()):
    """Decorator: the command gets one option per field in `names` (in that order; default: every field of `cls`
    but those in `skip`, in field order), placed after its parameter `after` (first when None); the command
    takes them as `**fields`."""
    names = names or [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    flags = flags or {}
    added = [field_option(cls, name, flag=flags.get(name), unset=name in unset) for name in names]

    def decorate(command):
        @functools.wraps(command)
        def with_fields(**options):
            return command(**options)

        return with_signature(with_fields, command, added, after)

    return decorate


def with_signature(wrapper, command, added: list[inspect.Parameter], after: str | None = None, drop=()):
    """`wrapper` with the signature typer reads: `command`'s own parameters (keyword-only, without **kwargs and
    those named in `drop`) with `added` placed after the parameter `after` (first when None)."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in drop]
    at = 0 if after is None else [p.name for p in own].index(after) + 1
    params = own[:at] + added + own[at:]
    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
