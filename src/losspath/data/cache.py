"""Arrays of a generated or converted data set, cached once under the data root as one safetensors file.

Used by the data sets that ship inside packages (mnist1d, mnist5k): building them takes seconds, reading the
cache milliseconds. A cache is used only if its metadata carries the same `fingerprint` (what the arrays were
built from, and the layout version), its content matches the sha256 recorded when it was written, and `check`
accepts its arrays; otherwise the arrays are rebuilt and the cache rewritten (a damaged cache with a notice).
Failing to write the cache only warns: the data are usable without it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError

from ..checkpoints import save_state
from ..files import DamagedFile, load_checksummed, notice

Arrays = dict[str, torch.Tensor]


def read_cache(path: Path, fingerprint: str, check: Callable[[Arrays], bool]) -> Arrays | None:
    """The cached arrays, or None if there is no usable cache (missing, damaged, other fingerprint, bad arrays)."""
    if not path.is_file():
        return None
    try:
        arrays, meta = load_checksummed(path)
    except DamagedFile as e:
        notice(f"data cache {path} is damaged ({e.reason}); building it again.")
        return None
    if meta.get("fingerprint") != fingerprint:
        return None
    return arrays if check(arrays) else None


def cached_arrays(path: Path, fingerprint: str, build: Callable[[], Arrays], check: Callable[[Arrays], bool],
                  what: str) -> Arrays:
    """The arrays from the cache at `path`, or `build()` (then cached) when the cache is missing or unusable."""
    arrays = read_cache(path, fingerprint, check)
    if arrays is not None:
        return arrays
    arrays = build()
    try:
        save_state(path, arrays, metadata={"fingerprint": fingerprint})
    except (OSError, SafetensorError) as e:
        warnings.warn(f"Could not cache {what} at {path} ({e}); it will be rebuilt next time.")
    return arrays
