"""Where and how work runs — the run store, data, device, torch threads, executor — as one value.

Nothing here enters a run's identity (its hash), but the thread count and the device change the last bits of
trained weights (float reductions), so every job runs with an explicit thread count and the run records it
(`made_with` in DONE). The default is one torch thread per job: the networks of the studies are small, two
threads on two cores buy little when idle and lose when another process shares the cores (measured here next
to a busy neighbour: a LeNet line 1.14 s with two threads, 0.82 s with one; README, Benchmarks), and it makes a
study's numbers the same on every machine and with every executor. Parallelism comes from running independent jobs side by side instead.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import LosspathError

EXECUTORS = ("local", "dask")
DEFAULT_THREADS = 1


def check_threads(n: int | None, option: str = "--threads") -> None:
    """Raise the CLI's sentence for a thread count below 1 (None: torch's own count)."""
    if n is not None and n < 1:
        raise LosspathError(f"{option} must be at least 1, not {n}.")


@contextmanager
def torch_threads(n: int | None):
    """Run the body with `n` intra-op torch threads (unchanged when None; LosspathError when below 1)."""
    import torch

    check_threads(n)
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity (a SLURM job's or `taskset`'s cores, not the host's)
    capped by a cgroup v2 CPU quota (a container's `--cpus`)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


@dataclass(frozen=True)
class Runtime:
    """How a study or command runs; none of it is science, so none of it is in a run's hash.

    root, data_root: run store and data sets (None: $LOSSPATH_HOME, $LOSSPATH_DATA). device: cpu/cuda (None:
    cuda if available). threads: torch threads per job. executor: "local" (worker processes on this machine)
    or "dask" (`scheduler` address, or a LocalCluster of `workers` processes). jobs: local worker processes
    (None: `usable_cores()`; 1: every job in this process, one after another). progress: progress bars.
    """

    root: str | None = None
    data_root: str | None = None
    device: str | None = None
    threads: int = DEFAULT_THREADS
    executor: str = "local"
    jobs: int | None = None
    scheduler: str | None = None
    workers: int | None = None
    progress: bool = True

    def __post_init__(self):
        for name in ("root", "data_root"):  # paths travel to worker processes as strings
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, str(value))

    def checked(self) -> "Runtime":
        """This runtime, or one clear sentence on the first bad value."""
        check_threads(self.threads)
        check_threads(self.jobs, "--jobs")
        if self.executor not in EXECUTORS:
            raise LosspathError(f"Unknown executor {self.executor!r}; use one of {', '.join(EXECUTORS)}.")
        if self.executor == "local" and (self.scheduler or self.workers):
            raise LosspathError("--scheduler and --workers only apply to --executor dask.")
        if self.executor == "dask" and self.jobs is not None:
            raise LosspathError("--jobs applies to --executor local; a Dask cluster's size is --workers.")
        check_threads(self.workers, "--workers")
        return self

    def local_jobs(self, n_tasks: int | None = None) -> int:
        """Worker processes of the local executor: `jobs`, or as many usable cores as there are threads for
        (never more than `n_tasks` when given)."""
        jobs = self.jobs or max(1, usable_cores() // max(1, self.threads))
        return max(1, min(jobs, n_tasks)) if n_tasks else jobs
