"""MNIST-1D (Greydanus 2020): 4000 train / 1000 test signals of length 40, 10 classes, generated offline.

The arrays are generated once with the package's default arguments and cached under
`<root>/mnist1d/mnist1d.safetensors`; later loads read the cache.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from .base import Dataset, Split
from .cache import cached_arrays

NUM_CLASSES = 10
_KEYS = ("x", "y", "x_test", "y_test")
# Bump when the cached layout or the preprocessing here changes, so old caches are regenerated.
_FORMAT = "1"


def cache_path(root: Path) -> Path:
    return Path(root) / "mnist1d" / "mnist1d.safetensors"


def _generation_args():
    import mnist1d.data

    args = mnist1d.data.get_dataset_args()
    # The URL does not affect the data; leaving it out keeps the fingerprint stable if it moves.
    fingerprint = json.dumps({k: v for k, v in vars(args).items() if k != "url"}, sort_keys=True)
    return args, fingerprint


def _generate(args) -> dict[str, torch.Tensor]:
    import mnist1d.data

    # make_dataset reseeds the global numpy and `random` generators; restore them so loading data
    # does not change the randomness of whatever runs next.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = mnist1d.data.make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": torch.from_numpy(np.asarray(raw["x"], dtype=np.float32)).unsqueeze(1).contiguous(),
        "y": torch.from_numpy(np.asarray(raw["y"], dtype=np.int64)),
        "x_test": torch.from_numpy(np.asarray(raw["x_test"], dtype=np.float32)).unsqueeze(1).contiguous(),
        "y_test": torch.from_numpy(np.asarray(raw["y_test"], dtype=np.int64)),
    }


def _well_formed(arrays: dict[str, torch.Tensor]) -> bool:
    if set(arrays) != set(_KEYS):
        return False
    x, y, xt, yt = (arrays[k] for k in _KEYS)
    return (
        x.dtype == torch.float32 and xt.dtype == torch.float32
        and y.dtype == torch.int64 and yt.dtype == torch.int64
        and x.dim() == 3 and xt.dim() == 3 and x.shape[1:] == xt.shape[1:] and x.shape[1] == 1
        and y.shape == x.shape[:1] and yt.shape == xt.shape[:1]
    )


def load(root: Path) -> Dataset:
    """MNIST-1D from the cache under `root`, generating (and caching) it on first use."""
    args, fingerprint = _generation_args()
    arrays = cached_arrays(cache_path(root), f"{_FORMAT}:{fingerprint}", lambda: _generate(args), _well_formed,
                           "MNIST-1D")
    return Dataset(
        name="mnist1d",
        train=Split(arrays["x"], arrays["y"], NUM_CLASSES),
        test=Split(arrays["x_test"], arrays["y_test"], NUM_CLASSES),
        augment=None,
    )
