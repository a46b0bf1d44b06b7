"""MNIST read from torchvision's on-disk layout: `<root>/MNIST/raw/*-idx?-ubyte[.gz]`, parsed here (no torchvision)."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ._common import malformed, normalize_uint8, not_found
from .base import Dataset, Split

NUM_CLASSES = 10
# OpenLTH / torchvision: ToTensor (x/255) then Normalize(mean, std).
MEAN, STD = (0.1307,), (0.3081,)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_HOW_GET = "place torchvision's MNIST files (MNIST/raw/train-images-idx3-ubyte etc., plain or .gz)"
_HOW_FIX = "replace it with an intact copy of torchvision's MNIST file (losspath cannot download data sets)"
# IDX magic number: two zero bytes, a type code (0x08 = unsigned byte) and the number of dimensions.
_UBYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut .gz raises EOFError
        raise malformed("MNIST file", path, f"cannot be read or decompressed: {e}", _HOW_FIX) from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The unsigned-byte array stored in IDX file `path` (plain or .gz), which must have `ndim` dimensions."""
    data = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise malformed("MNIST file", path, f"{len(data)} bytes, shorter than its {header}-byte IDX header", _HOW_FIX)
    magic = int.from_bytes(data[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise malformed(
            "MNIST file", path, f"IDX magic number 0x{magic:08x}, expected 0x{expected:08x}", _HOW_FIX
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        raise malformed(
            "MNIST file",
            path,
            f"header declares dimensions {'×'.join(map(str, dims))} = {size} bytes "
            f"but {len(data) - header} bytes follow",
            _HOW_FIX,
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(raw: Path, root: Path, name: str) -> Path:
    # Plain first: torchvision leaves both the .gz and the extracted file, and the plain one is faster.
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise not_found("MNIST file", f"{raw / name}(.gz)", root, _HOW_GET)


def _load_split(raw: Path, root: Path, which: str) -> Split:
    images_name, labels_name = FILES[which]
    images_path, labels_path = _find(raw, root, images_name), _find(raw, root, labels_name)
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise malformed(
            "MNIST file", images_path, f"images are {images.shape[1]}×{images.shape[2]}, expected 28×28", _HOW_FIX
        )
    if labels.shape[0] != images.shape[0]:
        raise malformed(
            "MNIST file",
            labels_path,
            f"{labels.shape[0]} labels for the {images.shape[0]} images in {images_path.name}",
            _HOW_FIX,
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise malformed("MNIST file", labels_path, f"label {int(labels.max())} is not a digit 0-9", _HOW_FIX)
    inputs = normalize_uint8(images[:, None], MEAN, STD)
    return Split(inputs, torch.from_numpy(labels.astype(np.int64)), NUM_CLASSES)


def load(root: Path) -> Dataset:
    """MNIST train (60000) and test (10000) from `<root>/MNIST/raw`, normalized as OpenLTH; no augmentation."""
    raw = Path(root) / "MNIST" / "raw"
    return Dataset(
        name="mnist",
        train=_load_split(raw, root, "train"),
        test=_load_split(raw, root, "test"),
        augment=None,
    )
