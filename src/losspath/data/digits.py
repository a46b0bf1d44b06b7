"""scikit-learn's 8×8 handwritten digits (1797 images, shipped with scikit-learn): 1437 train / 360 test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import Dataset, Split

NUM_CLASSES = 10
TEST_SIZE = 360
SPLIT_SEED = 0


def load(root: Path) -> Dataset:
    """The digits split by a fixed seeded stratified split; pixels /16, then standardized by the train mean/std.

    `root` is unused: the data ship with scikit-learn.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.data.astype(np.float64) / 16.0
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y
    )
    # One scalar mean/std over all train pixels (a single channel): per-pixel statistics would divide
    # by zero on the border pixels that are blank in every training image.
    mean, std = x_train.mean(), x_train.std()

    def to_split(a: np.ndarray, t: np.ndarray) -> Split:
        inputs = torch.from_numpy(((a - mean) / std).astype(np.float32)).reshape(-1, 1, 8, 8).contiguous()
        return Split(inputs, torch.from_numpy(t), NUM_CLASSES)

    return Dataset(name="digits", train=to_split(x_train, y_train), test=to_split(x_test, y_test), augment=None)
