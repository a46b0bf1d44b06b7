"""The data a line is evaluated on, as batches of (model inputs, targets).

Accepted: an (inputs, targets) pair of tensors; a tuple of several input tensors and the targets last; a dict
of tensors (HuggingFace style: the model gets every entry but the target, `labels` unless `target_key` says
otherwise); a losspath `Split`; or any iterable of batches (a DataLoader) whose batches are such tuples or
dicts. Inputs go to the model as positional arguments (tuples) or keyword arguments (dicts).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

import torch

from ..errors import LosspathError


class Inputs(NamedTuple):
    """A model's inputs: model(*args, **kwargs)."""

    args: tuple
    kwargs: dict

    def single_tensor(self) -> torch.Tensor | None:
        """The input when the model takes one positional tensor (what the layer shortcuts need), else None."""
        if len(self.args) == 1 and not self.kwargs and isinstance(self.args[0], torch.Tensor):
            return self.args[0]
        return None

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (*self.args, *self.kwargs.values()) if isinstance(t, torch.Tensor)]


class Batch(NamedTuple):
    inputs: Inputs
    target: object  # a tensor (None for training data without targets)
    size: int


def as_inputs(inputs) -> Inputs:
    """Inputs from a tensor (one positional input), a dict (keyword inputs) or a tuple/list (positional)."""
    if isinstance(inputs, Inputs):
        return inputs
    if isinstance(inputs, Mapping):
        return Inputs((), dict(inputs))
    if isinstance(inputs, (tuple, list)):
        return Inputs(tuple(inputs), {})
    return Inputs((inputs,), {})


class DataSource:
    """Batches on `device`. Tensor tuples, dicts of tensors and Splits are cut at any batch size; an iterable
    (a DataLoader) keeps its own batches and `batch_size` is ignored. Targets are converted to `target_dtype`
    (None: kept); `needs_target=False` (training data for BatchNorm statistics) makes them optional. A single
    4-D input is made channels_last on the CPU, and on any device with `channels_last`."""

    def __init__(self, data, device: torch.device, what: str = "data", *, target_key: str = "labels",
                 target_dtype: torch.dtype | None = torch.long, needs_target: bool = True,
                 channels_last: bool = False):
        self.data, self.device, self.what = data, device, what
        self.target_key, self.target_dtype, self.needs_target = target_key, target_dtype, needs_target
        self.channels_last = channels_last
        self.kind = "iterable"
        if isinstance(data, (tuple, list)) and len(data) >= 2 and all(isinstance(t, torch.Tensor) for t in data):
            lengths = [t.shape[0] if t.dim() else -1 for t in data]
            if len(set(lengths)) != 1:
                if len(data) == 2:
                    raise LosspathError(
                        f"The {what} inputs ({lengths[0]}) and targets ({lengths[1]}) differ in length.")
                raise LosspathError(f"The {what} tensors differ in length: {', '.join(map(str, lengths))}.")
            self.kind = "tensors"
        elif isinstance(data, Mapping):
            if not data or not all(isinstance(t, torch.Tensor) and t.dim() for t in data.values()):
                raise LosspathError(f"A dict as the {what} must map names to tensors with one row per example.")
            if len({t.shape[0] for t in data.values()}) != 1:
                raise LosspathError(f"The {what} tensors differ in length: "
                                    + ", ".join(f"{k} {t.shape[0]}" for k, t in data.items()) + ".")
            self.kind = "dict"
        elif hasattr(data, "batches") and hasattr(data, "__len__"):
            self.kind = "split"
        elif not isinstance(data, Iterable) or isinstance(data, (str, bytes, torch.Tensor)):
            raise LosspathError(
                f"The {what} must be an (inputs, targets) pair, a tuple or dict of tensors, a DataLoader or a Split, "
                f"not {type(data).__name__}."
            )

    @property
    def chooses_batch_size(self) -> bool:
        return self.kind != "iterable"

    def __len__(self) -> int:
        if self.kind == "tensors":
            return int(self.data[-1].shape[0])
        if self.kind == "dict":
            return int(next(iter(self.data.values())).shape[0])
        if self.kind == "split":
            return len(self.data)
        dataset = getattr(self.data, "dataset", None)
        return len(dataset) if dataset is not None and hasattr(dataset, "__len__") else 0

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        if self.kind == "tensors":
            raw = (tuple(t[i : i + batch_size] for t in self.data) for i in range(0, len(self), batch_size))
        elif self.kind == "dict":
            raw = ({k: t[i : i + batch_size] for k, t in self.data.items()} for i in range(0, len(self), batch_size))
        elif self.kind == "split":
            raw = self.data.batches(batch_size)
        else:
            raw = iter(self.data)
        for i, batch in enumerate(raw):
            if limit is not None and i >= limit:
                break
            yield self._to_device(batch)

    def first(self, n: int | None) -> Batch:
        """Up to `n` examples from the start of the data (for probing the model)."""
        for batch in self.batches(n or 8, limit=1):
            return head(batch, n) if n else batch
        raise LosspathError(f"The {self.what} is empty.")

    def _move(self, t):
        return t.to(self.device, non_blocking=True) if isinstance(t, torch.Tensor) else t

    def _to_device(self, batch) -> Batch:
        if isinstance(batch, Mapping):
            if self.target_key not in batch and self.needs_target:
                raise LosspathError(f"Each dict batch of the {self.what} needs a {self.target_key!r} entry "
                                    f"(the targets; pass target_key= to name another); it has {', '.join(batch)}.")
            kwargs = {k: self._move(v) for k, v in batch.items() if k != self.target_key}
            inputs, target = Inputs((), kwargs), batch.get(self.target_key)
        elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
            args = tuple(self._move(t) for t in batch[:-1])
            # CPU convolutions run faster on NHWC images (25% on a CIFAR ResNet); same values
            if len(args) == 1 and isinstance(args[0], torch.Tensor) and args[0].dim() == 4 \
                    and (args[0].device.type == "cpu" or self.channels_last):
                args = (args[0].contiguous(memory_format=torch.channels_last),)
            inputs, target = Inputs(args, {}), batch[-1]
        else:
            raise LosspathError(f"Each batch of the {self.what} must be an (inputs, targets) pair, a tuple ending "
                                f"with the targets, or a dict.")
        if target is not None and not isinstance(target, torch.Tensor):
            raise LosspathError(f"The targets in each batch of the {self.what} must be a tensor, "
                                f"not {type(target).__name__}.")
        if target is not None:
            target = target.to(self.device, dtype=self.target_dtype, non_blocking=True) if self.target_dtype \
                else target.to(self.device, non_blocking=True)
        sized = [target] if target is not None else inputs.tensors()
        if not sized or sized[0].dim() == 0:
            raise LosspathError(f"A batch of the {self.what} has no tensor with one row per example.")
        return Batch(inputs, target, int(sized[0].shape[0]))


def head(batch: Batch, n: int) -> Batch:
    """The first n examples of a batch (tensors with a leading batch dimension are cut; others kept)."""
    def cut(t):
        return t[:n] if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == batch.size else t

    inputs = Inputs(tuple(cut(t) for t in batch.inputs.args), {k: cut(v) for k, v in batch.inputs.kwargs.items()})
    return Batch(inputs, cut(batch.target), min(n, batch.size))
