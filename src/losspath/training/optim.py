"""SGD with momentum and weight decay, step milestones, linear warmup (OpenLTH's optimizer settings)."""
from __future__ import annotations

import torch
from torch import nn

from ..hparams import Hparams
from ..steps import parse_step


def make_optimizer(model: nn.Module, hp: Hparams) -> torch.optim.SGD:
    """Plain SGD; coupled weight decay on every parameter, as OpenLTH."""
    return torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)


def lr_at(iteration: int, hp: Hparams, per_epoch: int) -> float:
    """The learning rate used for the update at `iteration` (0-based).

    lr · gamma^(number of milestones ≤ iteration), times min(1, iteration / warmup): OpenLTH's schedule
    (training/optimizers.py: a LambdaLR of ∏ [gamma^bisect(milestones, it), min(1, it / warmup)]). The first
    update of a warmup therefore runs at lr = 0; it still moves the weights through nothing but fills SGD's
    momentum buffer with its gradient, as in OpenLTH. We keep that (arguably wasted) step on purpose: the paper
    settings are meant to be OpenLTH's, iteration for iteration. A function of the iteration alone, so a resumed
    run needs no scheduler state.
    """
    milestones = [parse_step(m, per_epoch) for m in hp.milestones.split(",") if m.strip()]
    lr = hp.lr * hp.gamma ** sum(iteration >= m for m in milestones)
    warmup = parse_step(hp.warmup, per_epoch) if hp.warmup.strip() else 0
    if warmup and iteration < warmup:
        lr *= iteration / warmup
    return lr
