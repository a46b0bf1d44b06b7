"""A perfectly balanced K-class toy data set whose classes carry signals of different strength.

Wang et al. 2023 (the "biased view" of MLI) show with a simple model that the last-layer biases of the
classes drift apart during training even when every class has the same number of examples: a class whose
signal is weak is learned late, and until it is learned the only way to raise its probability is its bias.
The data here are ours: class k sits on its own input axis, x = s_k·e_k + noise·ε, where ε ~ N(0, I) lives
only on `dim` − K extra "nuisance" axes orthogonal to every class axis, with the same number of examples per
class in both splits. So the classes are perfectly separable and differ only in their signal strength s_k,
and the nuisance axes make a random initial network predict a different class for different examples of one
class (its error at initialization is then near 1 − 1/K, as on real data). Inputs are (N, dim) float32; the
name records every parameter, so runs on different toy data never share a run directory.
"""
from __future__ import annotations

import re

from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import LosspathError
from .base import Dataset, Split

DEFAULT_STRENGTHS = (4.0, 2.0, 1.0, 0.5)  # K = 4, each class half as strong as the one before


def toy_name(strengths: Sequence[float], per_class: int, noise: float, dim: int, seed: int) -> str:
    s = "-".join(f"{float(v):g}" for v in strengths)
    return f"toy_k{len(strengths)}_s{s}_n{per_class}_d{dim}_noise{float(noise):g}_seed{seed}"


def make_toy_dataset(strengths: Sequence[float] = DEFAULT_STRENGTHS, *, per_class: int = 32, noise: float = 1.0,
                     dim: int | None = None, seed: int = 0, num_classes: int | None = None) -> Dataset:
    """Balanced toy data: `per_class` examples of each class k in each split, x = s_k·e_k + noise·ε with ε
    standard normal on the axes K .. dim−1 only (default dim = 4K).

    `num_classes` (optional) takes the first K strengths of 4, 2, 1, 0.5, 0.25, ... (halving) instead of
    `strengths`. With noise = 0 (or dim = K) every example of a class is the same point.
    """
    if num_classes is not None:
        if int(num_classes) < 2:
            raise LosspathError(f"The toy data set needs at least 2 classes, got {num_classes}.")
        strengths = [4.0 * 0.5**k for k in range(int(num_classes))]
    strengths = [float(s) for s in strengths]
    if len(strengths) < 2 or any(not s > 0 for s in strengths):
        raise LosspathError(f"The toy data set needs at least 2 positive class strengths, got {strengths}.")
    if int(per_class) < 1 or noise < 0:
        raise LosspathError(f"per_class must be positive and noise non-negative, got {per_class} and {noise}.")
    k = len(strengths)
    dim = 4 * k if dim is None else int(dim)
    if dim < k:
        raise LosspathError(f"The toy inputs need at least one axis per class: dim {dim} < {k} classes.")
    gen = torch.Generator().manual_seed(int(seed))
    means = torch.zeros(k, dim, dtype=torch.float64)
    means[:, :k] = torch.diag(torch.tensor(strengths, dtype=torch.float64))

    def split() -> Split:
        y = torch.arange(k).repeat_interleave(int(per_class))
        x = means[y].clone()
        x[:, k:] += float(noise) * torch.randn(len(y), dim - k, generator=gen, dtype=torch.float64)
        return Split(x.float(), y, k)

    train = split()
    test = split()
    name = toy_name(strengths, int(per_class), noise, dim, int(seed))
    return Dataset(name=name, train=train, test=test, augment=None)


def toy_from_name(name: str) -> Dataset:
    """The toy data set a `toy_name` describes (the name records every parameter), so that a job in another
    process finds it by name like any other data set."""
    m = re.fullmatch(r"toy_k(\d+)_s([0-9.e+-]+(?:-[0-9.e+]+)*)_n(\d+)_d(\d+)_noise([0-9.e+-]+)_seed(\d+)", name)
    if m is None:
        raise LosspathError(f"{name!r} is not the name of a toy data set (toy_kK_sS1-S2-..._nN_dD_noiseX_seedS).")
    strengths = [float(v) for v in re.findall(r"[0-9.]+(?:e[+-]?\d+)?", m.group(2))]
    data = make_toy_dataset(strengths, per_class=int(m.group(3)), noise=float(m.group(5)), dim=int(m.group(4)),
                            seed=int(m.group(6)))
    if data.name != name or len(strengths) != int(m.group(1)):
        raise LosspathError(f"The toy data set name {name!r} does not describe its parameters exactly.")
    return data


def load(root: Path) -> Dataset:
    """The default toy data set, in the loader form of the name registry (nothing is on disk, `root` is
    unused); `load_dataset` finds any other toy data set by its name (`toy_from_name`)."""
    return make_toy_dataset()
