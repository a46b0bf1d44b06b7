"""Run a study's jobs in-process or on a Dask `distributed` cluster.

A study is a graph of jobs: train(run) → line(run, start step) → aggregate in the caller. Jobs communicate
only through the shared run store (atomic files, a lock per run), so a worker that dies loses nothing and a
rerun picks up what is done. Each job runs with a given number of torch threads (default: the caller's),
because float reductions, and so the last bits of trained weights, depend on it; with the same thread
count the results do not depend on the executor.

  local  every job in this process, one at a time, in submission order.
  dask   an existing cluster (`scheduler="tcp://HOST:PORT"`, e.g. started by dask-jobqueue on SLURM) or a
         LocalCluster of `workers` processes bound to 127.0.0.1, one thread each.
"""
from __future__ import annotations

import functools
import sys
import time
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from .data import Dataset, load_dataset
from .errors import LosspathError
from .hparams import Hparams

EXECUTORS = ("local", "dask")


@functools.lru_cache(maxsize=8)
def cached_dataset(name: str, data_root: str | None) -> Dataset:
    """`load_dataset`, loaded once per process (jobs of one study share it on a worker)."""
    return load_dataset(name, data_root)


def check_threads(n: int | None) -> None:
    """Raise the CLI's sentence for a thread count below 1 (None: torch's own count)."""
    if n is not None and n < 1:
        raise LosspathError(f"--threads must be at least 1, not {n}.")


@contextmanager
def torch_threads(n: int | None):
    """Run the body with `n` intra-op torch threads (unchanged when None; LosspathError when below 1)."""
    check_threads(n)
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_job(hp: Hparams, root: str | None, data_root: str | None, device: str | None, threads: int | None) -> str:
    """Train (or find) the run of `hp`; returns its directory."""
    from .training import train

    with torch_threads(threads):
        data = cached_dataset(hp.dataset, data_root)
        return str(train(hp, root=root, dataset=data, progress=False, device=device).dir)


def line_job(run_dir: str, start_step: int, end_step: int | str, data_root: str | None, options: dict,
             threads: int | None):
    """The (cached) line of a stored run from `start_step` to `end_step`; `options` go to `run_line`."""
    from .run_lines import run_line
    from .store import Run
    from .training import model_for

    with torch_threads(threads):
        run = Run.open(run_dir)
        data = cached_dataset(run.hparams.dataset, data_root)
        return run_line(run, model_for(run.hparams, data), data, start_step, end_step, **options)


def track(items, total: int, desc: str, progress: bool):
    """Yield `items` (finished jobs) with progress: a tqdm bar on a terminal; elsewhere (a log file, nohup) one
    line on stderr per finished job, so a long study is never silent."""
    if not progress:
        yield from items
        return
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=desc, unit="job")
        return
    started = time.time()
    for i, item in enumerate(items, 1):
        yield item
        print(f"{desc}: {i}/{total} jobs done ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)


class _Task:
    """A deferred call for the local executor; arguments that are tasks are resolved first."""

    def __init__(self, fn, args):
        self.fn, self.args, self.done, self.value = fn, args, False, None

    def result(self):
        if not self.done:
            self.value = self.fn(*[a.result() if isinstance(a, _Task) else a for a in self.args])
            self.done = True
        return self.value


class LocalExecutor:
    name = "local"

    def submit(self, fn, *args):
        return _Task(fn, args)

    def gather(self, tasks: list, desc: str = "jobs", progress: bool = True) -> list:
        return list(track((t.result() for t in tasks), len(tasks), desc, progress))

    def close(self) -> None:
        pass


class DaskExecutor:
    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise LosspathError("--executor dask needs the distributed package: pip install 'losspath[dask]'.") from None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise LosspathError(f"Could not connect to the Dask scheduler at {scheduler} ({e}).") from None
            self.cluster = None
        else:
            self.cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)
            self.client = Client(self.cluster)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def gather(self, futures: list, desc: str = "jobs", progress: bool = True) -> list:
        from distributed import as_completed

        for _ in track(as_completed(futures), len(futures), desc, progress):
            pass
        return self.client.gather(futures)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(kind: str = "local", *, scheduler: str | None = None, workers: int | None = None):
    """The executor named `kind` ("local" or "dask")."""
    if kind == "local":
        if scheduler or workers:
            raise LosspathError("--scheduler and --workers only apply to --executor dask.")
        return LocalExecutor()
    if kind == "dask":
        if workers is not None and workers < 1:
            raise LosspathError("--workers must be at least 1.")
        return DaskExecutor(scheduler, workers)
    raise LosspathError(f"Unknown executor {kind!r}; use one of {', '.join(EXECUTORS)}.")
