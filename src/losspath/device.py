"""Choosing the torch device: CUDA when available unless the user names one."""
from __future__ import annotations

import torch

from .errors import LosspathError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch.device (default: cuda if available, else cpu); a clear error if unusable."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LosspathError(f"Device {device!r} is not a torch device; use 'cpu' or 'cuda'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LosspathError(f"Device {device!r} was asked for, but this machine has no CUDA GPU.")
    return dev
