"""BatchNorm statistics re-estimated at every α, vectorized over α.

`batchnorm="recompute"` follows Garipov et al. 2018's `update_bn` (dnn-mode-connectivity) and Frankle et al.
2020 (linear mode connectivity): reset the running statistics, set momentum=None, forward the training batches
and keep torch's exact cumulative average. With momentum=None torch sets, after n batches,
    running_mean = (1/n) Σ_i mean_i,      running_var = (1/n) Σ_i var_i · m_i / (m_i − 1),
the plain average over batches of each batch's mean and unbiased variance (m_i values per channel in batch i).

We compute the same average ourselves, for a whole stack of α at once: during the statistics pass every tracked
BatchNorm runs in train mode with momentum = 1.0 on running-stat buffers stacked over α, so after each batch its
buffers hold exactly that batch's mean and unbiased variance ((1 − 1)·old + 1·new), written by torch's own fused
kernel. In-place updates work under `vmap` because the buffers are themselves batched. We sum them in float64.

Only BatchNorm layers switch to train mode; the rest of the model stays in eval mode (dropout off), so the
estimate is deterministic. `update_bn` puts the whole model in train mode; for dropout-free nets the two agree.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..keys import BN_STATS, COUNTER


def tracked_batchnorms(model: nn.Module) -> dict[str, _BatchNorm]:
    """BatchNorm modules that keep running statistics, by name."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
    }


def _key(name: str, buffer: str) -> str:
    return f"{name}.{buffer}" if name else buffer


@contextmanager
def batch_statistics(model: nn.Module, names: list[str]):
    """Within the block the named BatchNorms normalize with batch statistics and overwrite their running
    statistics with them (train mode, momentum 1.0)."""
    saved = {}
    for name in names:
        m = model.get_submodule(name)
        saved[name] = (m.training, m.momentum)
        m.train()
        m.momentum = 1.0
    try:
        yield
    finally:
        for name, (training, momentum) in saved.items():
            m = model.get_submodule(name)
            m.train(training)
            m.momentum = momentum


class CumulativeAverage:
    """Per-α running statistics over batches: `buffers()` are the stacked tensors the BatchNorms overwrite with
    each batch's statistics; `add()` sums them in float64; `result()` is torch's momentum=None average."""

    def __init__(self, model: nn.Module, names: list[str], n: int, dtype: torch.dtype, device: torch.device):
        self.sums: dict[str, torch.Tensor] = {}
        self.stacks: dict[str, torch.Tensor] = {}
        for name in names:
            channels = model.get_submodule(name).num_features
            for buffer in BN_STATS:
                self.stacks[_key(name, buffer)] = torch.zeros(n, channels, dtype=dtype, device=device)
                self.sums[_key(name, buffer)] = torch.zeros(n, channels, dtype=torch.float64, device=device)
            # a scratch counter: train-mode BatchNorm increments num_batches_tracked in place
            self.stacks[_key(name, COUNTER)] = torch.zeros((), dtype=torch.long, device=device)
        self.batches = 0

    def buffers(self) -> dict[str, torch.Tensor]:
        return self.stacks

    def add(self) -> None:
        for key, total in self.sums.items():
            total += self.stacks[key]
        self.batches += 1

    def result(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {key: (total / self.batches).to(dtype) for key, total in self.sums.items()}
