"""Data sets by name, and where their files live on disk."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import LosspathError
from .base import Dataset

DEFAULT_DATASET = "mnist1d"

# name → module in this package exposing `load(root: Path) -> Dataset`. Imported on demand so that
# `import losspath.data` does not pull in scikit-learn, mnist1d or Pillow.
_LOADERS: dict[str, str] = {
    "mnist1d": "mnist1d",
    "digits": "digits",
    "mnist5k": "mnist5k",
    "mnist": "mnist",
    "cifar10": "cifar10",
    "imagenet": "imagenet",
}


def dataset_names() -> list[str]:
    """The names `load_dataset` accepts, the default (mnist1d) first."""
    return list(_LOADERS)


def default_data_root() -> Path:
    """`$LOSSPATH_DATA` if set and non-empty, else `~/.losspath/data`."""
    env = os.environ.get("LOSSPATH_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".losspath" / "data"


def load_dataset(name: str, root: str | Path | None = None) -> Dataset:
    """Load data set `name` from `root` (default: `default_data_root()`); nothing is ever downloaded."""
    key = str(name).strip().lower()
    if key.startswith("toy_k"):
        from .toy import toy_from_name

        return toy_from_name(key)
    if key not in _LOADERS:
        raise LosspathError(f"Unknown data set {name!r}; known data sets: {', '.join(dataset_names())}.")
    root = default_data_root() if root is None else Path(root).expanduser()
    module = importlib.import_module(f"{__package__}.{_LOADERS[key]}")
    return module.load(root)
