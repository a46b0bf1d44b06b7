"""BatchNorm statistics re-estimated at every α, vectorized over α.

`batchnorm="recompute"` follows Garipov et al. 2018's `update_bn` (dnn-mode-connectivity) and Frankle et al.
2020 (linear mode connectivity): reset the running statistics, set momentum=None, forward the training batches
and keep torch's exact cumulative average. With momentum=None torch sets, after n batches,
    running_mean = (1/n) Σ_i mean_i,      running_var = (1/n) Σ_i var_i · m_i / (m_i − 1),
the plain average over batches of each batch's mean and unbiased variance (m_i values per channel in batch i).

The in-place running-stat update cannot run under `vmap`, so we compute the same averages ourselves: while the
statistics are collected every tracked BatchNorm gets running_mean = running_var = None (so it normalizes with
batch statistics, as in train mode) and a pre-hook that records the mean and unbiased variance of its input. The
hook's tensors are returned from the vmapped function, so one forward pass serves a whole chunk of α.

Only BatchNorm layers switch to batch statistics; the rest of the model stays in eval mode (dropout off), so
the estimate is deterministic. `update_bn` puts the whole model in train mode; for dropout-free nets the two agree.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def tracked_batchnorms(model: nn.Module) -> dict[str, _BatchNorm]:
    """BatchNorm modules that keep running statistics, by name."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
    }


@contextmanager
def batch_statistics(model: nn.Module, names: list[str]):
    """Within the block the named BatchNorms normalize with batch statistics and record them in the yielded dict
    (name → (mean, unbiased var) of the last forward)."""
    record: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    saved, handles = {}, []
    for name in names:
        m = model.get_submodule(name)
        saved[name] = (m.running_mean, m.running_var)
        m.running_mean = m.running_var = None
        handles.append(m.register_forward_pre_hook(lambda mod, args, name=name: _record(record, name, args[0])))
    try:
        yield record
    finally:
        for h in handles:
            h.remove()
        for name, (mean, var) in saved.items():
            m = model.get_submodule(name)
            m.running_mean, m.running_var = mean, var


def _record(record: dict, name: str, x: torch.Tensor) -> None:
    dims = [0] + list(range(2, x.dim()))
    var, mean = torch.var_mean(x, dims, correction=1)
    record[name] = (mean, var)


class CumulativeAverage:
    """Sums per-batch statistics in float64; `result()` gives the momentum=None running mean and var."""

    def __init__(self):
        self.sums: dict[str, list[torch.Tensor]] = {}
        self.batches = 0

    def add(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        for name, (mean, var) in stats.items():
            if name in self.sums:
                self.sums[name][0] += mean.double()
                self.sums[name][1] += var.double()
            else:
                self.sums[name] = [mean.double(), var.double()]
        self.batches += 1

    def result(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        out = {}
        for name, (mean, var) in self.sums.items():
            prefix = f"{name}." if name else ""
            out[prefix + "running_mean"] = (mean / self.batches).to(dtype)
            out[prefix + "running_var"] = (var / self.batches).to(dtype)
        return out
