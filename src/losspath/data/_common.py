"""Helpers shared by the readers: uniform error messages and pixel normalization."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import LosspathError


def not_found(what: str, expected: str | Path, root: Path, how: str) -> LosspathError:
    """The error for a data file the user has to provide: where it is expected and that we cannot fetch it."""
    return LosspathError(
        f"{what} {expected} not found; losspath cannot download data sets: {how} under {root}."
    )


def malformed(what: str, path: str | Path, why: str, how: str) -> LosspathError:
    """The error for a data file that exists but cannot be read."""
    return LosspathError(f"{what} {path} is malformed ({why}); {how}.")


def normalize_uint8(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 N×C×... pixels → float32, /255 then (x − mean[c]) / std[c], in that order as torchvision does."""
    # astype copies into a writable float32 array (the input may be a read-only view of file bytes).
    x = torch.from_numpy(np.asarray(pixels).astype(np.float32)).div_(255.0)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    x.sub_(torch.tensor(mean, dtype=torch.float32).view(shape))
    x.div_(torch.tensor(std, dtype=torch.float32).view(shape))
    return x
