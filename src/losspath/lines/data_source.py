"""The data a line is evaluated on: an (inputs, targets) pair, a DataLoader, or a losspath `Split`."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ..errors import LosspathError

Batch = tuple[torch.Tensor, torch.Tensor]


class DataSource:
    """Batches of (inputs, int64 targets) on `device`. Pairs and Splits are cut at any batch size; a
    DataLoader (any iterable of (inputs, targets)) keeps its own batches and `batch_size` is ignored."""

    def __init__(self, data, device: torch.device, what: str = "data"):
        self.data, self.device, self.what = data, device, what
        self.kind = "iterable"
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
            if data[0].shape[0] != data[1].shape[0]:
                raise LosspathError(
                    f"The {what} inputs ({data[0].shape[0]}) and targets ({data[1].shape[0]}) differ in length."
                )
            self.kind = "pair"
        elif hasattr(data, "batches") and hasattr(data, "__len__"):
            self.kind = "split"
        elif not isinstance(data, Iterable):
            raise LosspathError(
                f"The {what} must be an (inputs, targets) pair, a DataLoader or a Split, not {type(data).__name__}."
            )

    @property
    def chooses_batch_size(self) -> bool:
        return self.kind != "iterable"

    def __len__(self) -> int:
        if self.kind == "pair":
            return int(self.data[1].shape[0])
        if self.kind == "split":
            return len(self.data)
        dataset = getattr(self.data, "dataset", None)
        return len(dataset) if dataset is not None and hasattr(dataset, "__len__") else 0

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        if self.kind == "pair":
            inputs, targets = self.data
            raw = ((inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(self), batch_size))
        elif self.kind == "split":
            raw = self.data.batches(batch_size)
        else:
            raw = iter(self.data)
        for i, batch in enumerate(raw):
            if limit is not None and i >= limit:
                break
            yield self._to_device(batch)

    def first(self, n: int) -> Batch:
        """Up to `n` examples from the start of the data (for probing the model)."""
        for x, y in self.batches(n or 8, limit=1):
            return x[:n], y[:n]
        raise LosspathError(f"The {self.what} is empty.")

    def _to_device(self, batch) -> Batch:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise LosspathError(f"Each batch of the {self.what} must be an (inputs, targets) pair.")
        x, y = batch[0].to(self.device, non_blocking=True), batch[1]
        if x.dim() == 4 and x.device.type == "cpu":  # CPU convolutions run faster on NHWC images (25% on a
            x = x.contiguous(memory_format=torch.channels_last)  # CIFAR ResNet); the values are the same
        return x, y.to(self.device, dtype=torch.long, non_blocking=True)
