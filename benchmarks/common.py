"""Helpers shared by the benchmark scripts: timing, GEMM rate, forward FLOPs of a network, the textbook line
loop that the engine is timed against, and a busy neighbour."""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def best_of(fn, repeats: int = 3) -> float:
    """The fastest of `repeats` wall-clock timings of fn(), in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_flops_per_second(n: int = 2048) -> float:
    """Measured dense float32 matmul rate (FLOP/s) on this machine with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = best_of(lambda: a @ b, repeats=5)
    return 2 * n**3 / seconds


def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-add FLOPs (2 per MAC) of the Linear and Conv layers for one example."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += 2 * mod.in_features * mod.out_features
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            k = mod.weight[0].numel()  # in_channels/groups × kernel
            total += 2 * k * out[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    with torch.no_grad():
        model.eval()
        model(example[:1])
    for h in handles:
        h.remove()
    return total


class BusyNeighbour:
    """A CPU-bound neighbour: one spinning process per usable core (as another user's job on a shared machine),
    started on entry and killed on exit."""

    def __init__(self, processes: int | None = None):
        from losspath.runtime import usable_cores

        self.n = processes or usable_cores()
        self.procs = []

    def __enter__(self):
        import subprocess
        import sys

        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(0.5)  # let them reach full speed
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def interpolated(start: dict, end: dict, a: float) -> dict:
    """θ(α) = (1 − α)·start + α·end for floating tensors; integer buffers take the end's value."""
    return {k: (1 - a) * v + a * end[k] if v.is_floating_point() else end[k] for k, v in start.items()}


@torch.inference_mode()
def plain_line(model, start, end, x, y, alphas, train=None, bn_batch=128, bn_batches=None, batch=1000):
    """The textbook loop: load θ(α) with load_state_dict, optionally re-estimate BN (momentum=None over
    `bn_batches` training batches of `bn_batch`, default all of `train`), evaluate in batches; float64 loss sums."""
    net = copy.deepcopy(model).eval()
    losses = []
    for a in alphas:
        net.load_state_dict(interpolated(start, end, float(a)))
        if train is not None:
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = None
                    m.reset_running_stats()
            net.train()
            count = bn_batches if bn_batches is not None else -(-len(train[0]) // bn_batch)
            for i in range(count):
                net(train[0][i * bn_batch:(i + 1) * bn_batch])
            net.eval()
        total = 0.0
        for i in range(0, len(y), batch):
            total += F.cross_entropy(net(x[i:i + batch]).double(), y[i:i + batch], reduction="sum").item()
        losses.append(total / len(y))
    return np.array(losses)
