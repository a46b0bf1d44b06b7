"""Plausibility limits, checked before anything is allocated: an absurd training length, α grid or network
size is one sentence, not an allocator traceback minutes later."""
from __future__ import annotations

import os

import torch

from .errors import LosspathError

MAX_ITERATIONS = 10**9  # far beyond any paper's run (ImageNet ResNet-50: ~10^5 iterations)
MAX_CHECKPOINTS = 100_000  # saved states per run
MAX_POINTS = 1_000_000  # α per line


def available_memory() -> int | None:
    """Bytes of memory this process could still take (Linux: MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parameter_count(build) -> int:
    """The parameters (and buffers) of the network `build()` makes, counted on the meta device (no memory)."""
    with torch.device("meta"):
        model = build()
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def check_model_fits(name: str, build, copies: int, what: str) -> None:
    """Raise when `copies` float32 copies of the network `build()` makes exceed the available memory."""
    available = available_memory()
    if available is None:
        return
    need = parameter_count(build) * 4 * copies
    if need > available:
        raise LosspathError(f"Network {name!r} is too large to {what}: it needs about {need / 2**30:.1f} GiB, and "
                            f"this machine has {available / 2**30:.1f} GiB available.")


def check_points(points: int, option: str = "--points") -> None:
    """An α grid of at least 2 and at most MAX_POINTS points."""
    if points < 2:
        raise LosspathError(f"{option} must be at least 2, not {points}.")
    if points > MAX_POINTS:
        raise LosspathError(f"{option} must be at most {MAX_POINTS:,}, not {points:,}.")
