"""Run a study's jobs (`losspath.jobs`) on this machine's cores or on a Dask `distributed` cluster.

A study is a graph of jobs: train(run) → line(run, start step) → aggregate in the caller. `submit(fn, *args)`
returns a task; an argument that is a task is replaced by its result before `fn` runs, so a line job waits
for its run's training. `gather(tasks, desc)` returns their results in order while one progress bar counts
every job of the study.

  local  `jobs` worker processes (spawned, one torch thread each by default), independent jobs side by side;
         with jobs=1 every job runs in this process, one after another, in submission order.
  dask   an existing cluster (`scheduler="tcp://HOST:PORT"`, e.g. started by dask-jobqueue on SLURM) or a
         LocalCluster of `workers` processes bound to 127.0.0.1, one thread each.

Every job sets its own torch thread count, so every executor and every worker count gives the same numbers.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .errors import LosspathError
from .runtime import Runtime


class Progress:
    """One count of finished jobs for a whole study: a tqdm bar on a terminal; elsewhere (a log file, nohup)
    one line on stderr per finished job, so a long study is never silent. The total grows as jobs are
    submitted; `desc` names the current phase."""

    def __init__(self, enabled: bool):
        self.enabled, self.total, self.done, self.bar, self.started = enabled, 0, 0, None, time.time()

    def add(self, n: int = 1) -> None:
        self.total += n
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def finished(self, desc: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if not sys.stderr.isatty():
            print(f"{desc}: {self.done}/{self.total} jobs done ({time.time() - self.started:.0f} s)",
                  file=sys.stderr, flush=True)
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done - 1, unit="job")
        self.bar.set_description(desc, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Task:
    """A job of the local executor: `fn(*args)` once the tasks among `args` are done."""

    def __init__(self, fn, args):
        self.fn, self.args, self.future, self.done, self.value = fn, args, None, False, None

    def deps(self) -> list["Task"]:
        return [a for a in self.args if isinstance(a, Task)]

    def resolved_args(self) -> list:
        return [a.value if isinstance(a, Task) else a for a in self.args]


def _worker_start() -> None:
    """Worker processes start at one torch thread (each job then sets its own) and leave Ctrl-C to the parent,
    which stops them."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


class _Closing:
    """`with make_executor(...) as ex:` closes the executor (and stops its workers) however the body ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(_Closing):
    """Jobs on this machine: in this process (jobs=1) or in `jobs` spawned worker processes."""

    name = "local"

    def __init__(self, jobs: int = 1, progress: bool = True):
        self.jobs, self.progress = jobs, Progress(progress)
        self.pending: list[Task] = []  # submitted, not started
        self.running: list[Task] = []
        self.pool = None

    def submit(self, fn, *args) -> Task:
        task = Task(fn, args)
        self.pending.append(task)
        self.progress.add()
        return task

    def gather(self, tasks: list, desc: str = "jobs") -> list:
        if self.jobs == 1:
            for task in tasks:
                self._run_here(task, desc)
        else:
            self._run_until_done(tasks, desc)
        return [t.value for t in tasks]

    def _run_here(self, task: Task, desc: str) -> None:
        for dep in task.deps():
            self._run_here(dep, desc)
        if not task.done:
            self.pending.remove(task)
            task.value, task.done = task.fn(*task.resolved_args()), True
            self.progress.finished(desc)

    def _run_until_done(self, wanted: list, desc: str) -> None:
        """Start ready jobs (those `wanted` and what they need first, then any other ready job while a worker
        would idle) until every wanted job is done."""
        needed = set()
        stack = list(wanted)
        while stack:
            task = stack.pop()
            if task not in needed:
                needed.add(task)
                stack += task.deps()
        while not all(t.done for t in wanted):
            ready = [t for t in self.pending if all(d.done for d in t.deps())]
            ready.sort(key=lambda t: t not in needed)  # stable: submission order within each group
            for task in ready[:max(0, self.jobs - len(self.running))]:
                self.pending.remove(task)
                task.future = self._pool().submit(task.fn, *task.resolved_args())
                self.running.append(task)
            if not self.running:
                raise LosspathError("internal: jobs wait on jobs that were never submitted to this executor.")
            finished, _ = wait([t.future for t in self.running], return_when=FIRST_COMPLETED)
            for task in [t for t in self.running if t.future in finished]:
                self.running.remove(task)
                try:
                    task.value, task.done = task.future.result(), True  # a job's exception is raised here
                except BrokenProcessPool:
                    raise LosspathError(
                        "A worker process died or could not start. Worker processes import your main script: call "
                        "a study from a script only under `if __name__ == \"__main__\":`, or run its jobs in this "
                        "process with --jobs 1 (Runtime(jobs=1)).") from None
                self.progress.finished(desc)

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # spawn, not fork: a forked child inherits torch's and numba's OpenMP state mid-flight
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_start)
        return self.pool

    def close(self) -> None:
        self.progress.close()
        if self.pool is not None:
            for process in list(getattr(self.pool, "_processes", {}).values()):  # jobs left running: stop them
                if process.is_alive() and self.running:
                    process.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class DaskExecutor(_Closing):
    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None, progress: bool = True):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise LosspathError("--executor dask needs the distributed package: pip install 'losspath[dask]'.") from None
        self.progress = Progress(progress)
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
        self.progress.add()
        return self.client.submit(fn, *args, pure=False)

    def gather(self, futures: list, desc: str = "jobs") -> list:
        from distributed import as_completed

        for _ in as_completed(futures):
            self.progress.finished(desc)
        return self.client.gather(futures)

    def close(self) -> None:
        self.progress.close()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(runtime: Runtime, n_tasks: int | None = None):
    """The executor `runtime` names; a local one gets `runtime.local_jobs(n_tasks)` worker processes."""
    runtime.checked()
    if runtime.executor == "dask":
        return DaskExecutor(runtime.scheduler, runtime.workers, runtime.progress)
    return LocalExecutor(runtime.local_jobs(n_tasks), runtime.progress)
