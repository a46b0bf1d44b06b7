"""Training-time augmentations as tensor ops on a whole batch, random only through the given generator."""
from __future__ import annotations

from typing import Sequence

import torch


def _draw_device(generator: torch.Generator) -> torch.device:
    # Random numbers must come from the generator's own device; they are moved to the batch afterwards,
    # so the same seed gives the same augmentation whatever device the batch is on. The moves are non-blocking:
    # a batch on the GPU is augmented without the host waiting for the device.
    return generator.device


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Reverse the last axis (horizontal flip for N×C×H×W) of each example with probability `p`."""
    flip = torch.rand(x.shape[0], generator=generator, device=_draw_device(generator)) < p
    flip = flip.to(x.device, non_blocking=True).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(flip, x.flip(-1), x)


def random_crop(x: torch.Tensor, generator: torch.Generator, padding: int = 4,
                fill: float | Sequence[float] = 0.0) -> torch.Tensor:
    """Pad each side of N×C×H×W by `padding` with `fill`, then cut an H×W window at a per-example random offset.

    Offsets are uniform in 0..2*padding on each axis, as torchvision's RandomCrop(H, padding). `fill` is one
    value or one per channel: to pad normalized images as torchvision pads the raw ones (black, pixel 0, before
    Normalize), pass each channel's normalized black, (0 − mean_c) / std_c.
    """
    if x.dim() != 4:
        raise ValueError(f"random_crop expects an N×C×H×W batch, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if padding == 0:
        return x
    padded = x.new_empty((n, c, h + 2 * padding, w + 2 * padding))
    padded[:] = torch.as_tensor(fill, dtype=x.dtype).reshape(-1, 1, 1).to(x.device, non_blocking=True)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    dev = _draw_device(generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev).to(x.device, non_blocking=True)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev).to(x.device, non_blocking=True)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # N×H
    cols = dx[:, None] + torch.arange(w, device=x.device)  # N×W
    # One advanced-indexing gather builds all N windows at once (N×C×H×W), no loop over examples.
    return padded[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def random_flip_crop(x: torch.Tensor, generator: torch.Generator, padding: int = 4,
                     fill: float | Sequence[float] = 0.0) -> torch.Tensor:
    """OpenLTH's CIFAR-10 augmentation, in its order: random horizontal flip, then random crop (padding 4)."""
    return random_crop(random_flip(x, generator), generator, padding=padding, fill=fill)
