"""Multi-process training with torch.distributed: N processes on this node, one per GPU (NCCL) or CPU (gloo).

This module only launches: the parent holds the run's lock and passes the work of one rank (training/loop.py
passes its loop, which builds the same initial model from the run's seed in every rank); the ranks rendezvous
on a free loopback port and run it as DistributedDataParallel ranks. Rank 0 writes checkpoints.
BatchNorm statistics are per rank (no SyncBatchNorm), as in plain DDP, so BatchNorm nets differ slightly
from single-process training; nets without BatchNorm match it up to reduction order.
"""
from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..errors import LosspathError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, work, device_type: str, nproc: int, port: int) -> None:
    cuda = device_type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=nproc)
    try:
        device = torch.device("cuda", rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        work(rank, nproc, device)
        # Leave together: rank 0 still writes the last checkpoint, metrics and DONE after the other ranks' loops
        # end, and a rank tearing down its gloo group while a peer is still busy could abort ("terminate called
        # without an active exception", seen in 2 of 5 full test runs).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn_ranks(work, device: torch.device, nproc: int) -> None:
    """Run `work(rank, world, device)` in `nproc` processes joined in one process group, and wait for all.

    `work` is the caller's (the training loop passes one rank of its loop); it must be picklable, e.g. a
    module-level function or a functools.partial of one."""
    if device.type == "cuda" and torch.cuda.device_count() < nproc:
        raise LosspathError(f"--nproc {nproc} needs {nproc} GPUs; this machine has {torch.cuda.device_count()}.")
    mp.spawn(_rank, args=(work, device.type, nproc, _free_port()), nprocs=nproc, join=True)
