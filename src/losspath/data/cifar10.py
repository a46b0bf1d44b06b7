"""CIFAR-10 from the Python version's pickles, `<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}`.

The pickles are read with an unpickler that can only rebuild numpy arrays, so a hostile file cannot run code.
"""
from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import LosspathError
from ._common import malformed, normalize_uint8, not_found
from .augment import random_flip_crop
from .base import Dataset, Split

NUM_CLASSES = 10
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
# OpenLTH normalizes CIFAR-10 with these (ImageNet) channel statistics, not CIFAR-10's own
# (0.4914, 0.4822, 0.4465)/(0.2470, 0.2435, 0.2616); matching it keeps OpenLTH checkpoints' losses comparable.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# A black pixel (0) after Normalize, per channel, computed as the images are: the border OpenLTH's crop adds.
BLACK = tuple(normalize_uint8(np.zeros((1, 3, 1, 1), np.uint8), MEAN, STD).flatten().tolist())
_HOW_GET = "place the extracted Python version of CIFAR-10 (cifar-10-python.tar.gz → cifar-10-batches-py/)"
_HOW_FIX = "replace it with an intact copy from the Python version of CIFAR-10 (losspath cannot download data sets)"


def _latin1_encode(text, encoding="latin1"):
    # Python 3 pickles at protocol ≤ 2 store bytes as _codecs.encode(text, 'latin1'); allow that and no other codec.
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode is only allowed with a str and 'latin1'")
    return codecs.encode(text, "latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """Everything a CIFAR-10 pickle may name: numpy array, dtype and scalar reconstruction, nothing else."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    # The real files are Python 2 pickles naming numpy.core; files written by numpy 2 name numpy._core.
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):  # protocol-5 pickles of arrays
            allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        # encoding='bytes': the Python 2 str keys and array buffers come back as bytes (keys b'data', b'labels').
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise LosspathError(
                f"CIFAR-10 file {self._path} refers to {module}.{name}, which a CIFAR-10 batch never contains, "
                f"so losspath refuses to unpickle it (it could run code)."
            ) from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N×3×32×32, int64 labels N) from one CIFAR-10 Python batch file."""
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, path).load()
    except LosspathError:
        raise
    except Exception as e:  # pickle reports a damaged stream with many exception types
        raise malformed(
            "CIFAR-10 file", path, f"not a readable pickle: {type(e).__name__}: {e}", _HOW_FIX
        ) from None
    if not isinstance(obj, dict):
        raise malformed("CIFAR-10 file", path, f"holds a {type(obj).__name__}, not a dict", _HOW_FIX)
    # Real files give bytes keys under encoding='bytes'; accept str keys from files re-pickled in Python 3.
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise malformed("CIFAR-10 file", path, f"'data' is a {what}, expected uint8 of shape (N, 3072)", _HOW_FIX)
    try:
        labels = np.asarray(labels)
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
    except Exception:
        ok = False
    if not ok or labels.shape[0] != data.shape[0]:
        raise malformed("CIFAR-10 file", path, f"'labels' is not a list of {data.shape[0]} integers", _HOW_FIX)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise malformed("CIFAR-10 file", path, "a label is outside 0-9", _HOW_FIX)
    # Each row is 1024 red, then 1024 green, then 1024 blue values, row-major: already channel-first.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _load_split(directory: Path, root: Path, names: tuple[str, ...]) -> Split:
    images, labels = [], []
    for name in names:
        path = directory / name
        if not path.is_file():
            raise not_found("CIFAR-10 file", path, root, _HOW_GET)
        x, y = read_batch(path)
        images.append(x)
        labels.append(y)
    inputs = normalize_uint8(np.concatenate(images), MEAN, STD)
    return Split(inputs, torch.from_numpy(np.concatenate(labels)), NUM_CLASSES)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """OpenLTH's training augmentation: RandomHorizontalFlip, then RandomCrop(32, padding=4) of the uint8 image.

    OpenLTH pads the raw image with black before Normalize; our images are normalized once at load, so the
    border is each channel's normalized black (0 − mean_c)/std_c ≈ (−2.118, −2.036, −1.804): the same
    pixels as OpenLTH's (to float rounding), not zeros in normalized space (the mean colour).
    """
    return random_flip_crop(x, generator, padding=4, fill=BLACK)


def load(root: Path) -> Dataset:
    """CIFAR-10 train (50000) and test (10000); augmentation: OpenLTH's flip and crop (`augment`)."""
    directory = Path(root) / "cifar-10-batches-py"
    return Dataset(
        name="cifar10",
        train=_load_split(directory, root, TRAIN_FILES),
        test=_load_split(directory, root, TEST_FILES),
        augment=augment,
    )
