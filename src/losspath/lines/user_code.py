"""A user's own network and data on the command line: `module:factory`, a Python callable that returns them.

`losspath line a.pt b.pt --model mypkg.nets:make_net --data mypkg.data:load_test` imports `mypkg.nets` (from the
current directory or the installed packages; a path `nets.py:make_net` works too) and calls `make_net()` with no
arguments. A model factory returns an nn.Module; a data factory returns anything `evaluate_line` takes, a
losspath Dataset (its `--split` is used), or a dict {"train": ..., "test": ...} of those.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path

from torch import nn

from ..errors import LosspathError


def is_factory(spec: str | None) -> bool:
    return spec is not None and ":" in spec


def call_factory(spec: str, option: str):
    """Import `module:name` (or `file.py:name`) and return name()."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise LosspathError(f"{option} {spec!r} must be MODULE:FUNCTION, e.g. mypkg.nets:make_net.")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise LosspathError(f"{option} {spec!r}: there is no file {path}.")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            try:
                module = importlib.import_module(module_name)
            finally:
                sys.path.remove(str(Path.cwd()))
    except LosspathError:
        raise
    except Exception as e:
        raise LosspathError(f"{option} {spec!r}: cannot import {module_name} ({type(e).__name__}: {e}).") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise LosspathError(f"{option} {spec!r}: {module_name} has no function {attr}.")
    try:
        return factory()
    except Exception as e:
        raise LosspathError(f"{option} {spec!r}: {attr}() fails ({type(e).__name__}: {e}).") from None


def user_model(spec: str) -> nn.Module:
    net = call_factory(spec, "--model")
    if not isinstance(net, nn.Module):
        raise LosspathError(f"--model {spec!r} must return a torch nn.Module, not {type(net).__name__}.")
    return net


def user_data(spec: str, split: str, with_train: bool):
    """(evaluation data, training data or None) from a data factory."""
    made = call_factory(spec, "--data")
    if hasattr(made, "split") and callable(made.split):
        return made.split(split), (made.train if with_train else None)
    if isinstance(made, Mapping) and split in made and not hasattr(made[split], "dim"):
        if with_train and "train" not in made:
            raise LosspathError(f"--batchnorm recompute needs training data: {spec} must return a 'train' entry too.")
        return made[split], (made["train"] if with_train else None)
    if with_train:
        raise LosspathError(f"--batchnorm recompute needs training data: {spec} must return a Dataset or "
                            "{'train': ..., 'test': ...}.")
    return made, None
