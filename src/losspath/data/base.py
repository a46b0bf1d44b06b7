"""What every data set is: two in-memory splits of (inputs, targets) tensors, batches as index slices."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class Split:
    """One split held in memory: float inputs (N × channels × ...) and int64 class targets (N,)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples at `index` (a 1-D int64 tensor); streaming splits override this.

        `generator` is given for a training batch that is augmented: a split that augments while it reads
        (ImageNet's random resized crop, at decode) draws from it; in-memory splits ignore it (their
        augmentation is `Dataset.augment`, on the batch).
        """
        index = index.to(self.inputs.device)  # index_select: a third of advanced indexing's time, same values
        return self.inputs.index_select(0, index), self.targets.index_select(0, index.to(self.targets.device))

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches in order, the last one possibly short (for evaluation)."""
        n = len(self)
        for lo in range(0, n, batch_size):
            yield self.batch(torch.arange(lo, min(lo + batch_size, n), device=self.targets.device))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])


@dataclass
class Dataset:
    """A named data set: train and test splits and the training-time augmentation (tensor ops on a batch)."""

    name: str
    train: Split
    test: Split
    augment: Augment | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            from ..errors import LosspathError

            raise LosspathError(f"Unknown split {name!r}; use 'train' or 'test'.")
        return self.train if name == "train" else self.test
