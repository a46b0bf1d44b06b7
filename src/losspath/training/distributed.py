"""Multi-process training with torch.distributed: N processes on this node, one per GPU (NCCL) or CPU (gloo).

The parent holds the run's lock; the ranks rendezvous on a free loopback port, build the same initial model
from the run's seed, and run the training loop as DistributedDataParallel ranks. Rank 0 writes checkpoints.
BatchNorm statistics are per rank (no SyncBatchNorm), as in plain DDP, so BatchNorm nets differ slightly
from single-process training; nets without BatchNorm match it up to reduction order.
"""
from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, loop, run, data, plan, progress, device_type, nproc, port) -> None:
    from .loop import initial_model

    cuda = device_type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=nproc)
    try:
        device = torch.device("cuda", rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        loop(run, data, initial_model(run.hparams, data, run.dir.parent), plan, progress, device, rank=rank, world=nproc)
        # Leave together: rank 0 still writes the last checkpoint, metrics and DONE after the other ranks' loops
        # end, and a rank tearing down its gloo group while a peer is still busy could abort ("terminate called
        # without an active exception", seen in 2 of 5 full test runs).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn_training(loop, run, data, plan: dict, progress: bool, device: torch.device, nproc: int) -> None:
    """Run `loop` (the training loop) as `nproc` DistributedDataParallel ranks and wait for all of them."""
    if device.type == "cuda" and torch.cuda.device_count() < nproc:
        from ..errors import LosspathError

        raise LosspathError(f"--nproc {nproc} needs {nproc} GPUs; this machine has {torch.cuda.device_count()}.")
    mp.spawn(_rank, args=(loop, run, data, plan, progress, device.type, nproc, _free_port()), nprocs=nproc, join=True)
