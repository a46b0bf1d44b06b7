"""Copies of a run spawned at step k that finish their training with other SGD noise.

Frankle, Dziugaite, Roy & Carbin 2020 ("Linear Mode Connectivity and the Lottery Ticket Hypothesis", §2,
instability analysis): train a network to iteration k, make two copies, train both to the end of the original
schedule with different samples of SGD noise (data order and augmentation), and compare the two ends.

`child_hparams` writes such a copy as a run of its own: it starts from the parent's checkpoint at k
(`Hparams.init_from`) and trains the remaining T − k iterations with the learning-rate schedule shifted by k
(a milestone m of the parent sits at max(0, m − k) in the child), with its own data-order seed. Our choice
where the paper is silent: the checkpoint holds weights only, so SGD's momentum buffer restarts from zero at
the spawn point; the child's epochs restart at its iteration 0.
"""
from __future__ import annotations

from .errors import LosspathError
from .hparams import Hparams
from .steps import parse_step


def child_hparams(parent: Hparams, k: int, data_seed: int, per_epoch: int) -> Hparams:
    """The copy of `parent`'s run spawned at iteration `k` that finishes its schedule with data-order seed
    `data_seed`, saving only its first and last checkpoints."""
    last = parse_step(parent.steps, per_epoch)
    if not 0 <= k < last:
        raise LosspathError(f"The spawn step k = {k} must lie in [0, {last}) (the parent trains {last} iterations).")
    if parent.warmup.strip() and k < parse_step(parent.warmup, per_epoch):
        raise LosspathError(f"Spawning at k = {k} inside the parent's warmup ({parent.warmup}) is not supported: "
                            "a child's warmup cannot continue the parent's.")
    if parent.init_from or parent.perturb:
        raise LosspathError("The parent of spawned copies must be a run trained from its own initialization.")
    milestones = [parse_step(m, per_epoch) for m in parent.milestones.split(",") if m.strip()]
    return parent.replace(
        init_from=f"{parent.run_id()}@{k}", data_seed=data_seed, steps=f"{last - k}it",
        milestones=",".join(f"{max(0, m - k)}it" for m in milestones), warmup="", checkpoints="0,last")
