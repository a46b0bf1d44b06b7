"""The jobs a study hands to an executor (`losspath.executors`): train a run, evaluate a line of a stored run.

A job takes only picklable arguments (Hparams, paths as strings, dicts), finds its data through a per-process
cache, and talks to other jobs only through the run store (atomic files, a lock per run): a worker that dies
loses nothing, and a rerun picks up what is done. Each job runs with an explicit torch thread count.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

from .data import Dataset, load_dataset
from .hparams import Hparams
from .runtime import Runtime, torch_threads


@functools.lru_cache(maxsize=8)
def cached_dataset(name: str, data_root: str | None) -> Dataset:
    """`load_dataset`, loaded once per process (jobs of one study share it on a worker)."""
    return load_dataset(name, data_root)


def train_job(hp: Hparams, runtime: Runtime, after: str | None = None, diverged_ok: bool = False) -> str | None:
    """Train (or find) the run of `hp` in the runtime's store, on its device, with its threads; returns its
    directory. `after`: the run this one starts from (`hp.init_from`), an argument only so that an executor
    runs this job once that run is done. With `diverged_ok`, a run whose loss diverges returns None instead of
    raising TrainingDiverged."""
    from .errors import TrainingDiverged
    from .training import train

    with torch_threads(runtime.threads):
        data = cached_dataset(hp.dataset, runtime.data_root)
        try:
            return str(train(hp, root=runtime.root, dataset=data, progress=False, device=runtime.device).dir)
        except TrainingDiverged:
            if diverged_ok:
                return None
            raise


@contextmanager
def stored_run(run_dir: str, runtime: Runtime):
    """Inside a job: the stored run at `run_dir` and its data set, with the runtime's torch thread count."""
    from .store import Run

    with torch_threads(runtime.threads):
        run = Run.open(run_dir)
        yield run, cached_dataset(run.hparams.dataset, runtime.data_root)


def line_job(run_dir: str, start_step: int | str, end_step: int | str, options: dict, runtime: Runtime,
             end_run_dir: str | None = None):
    """The (cached) line of a stored run from `start_step` to `end_step` (a step of run `end_run_dir` when
    given: a line between two runs of the same network and data), on the runtime's device with its threads;
    `options` go to `run_lines.run_line`."""
    from .run_lines import run_line
    from .store import Run
    from .training import model_for

    with stored_run(run_dir, runtime) as (run, data):
        end_run = Run.open(end_run_dir) if end_run_dir else None
        return run_line(run, model_for(run.hparams, data), data, start_step, end_step, end_run=end_run,
                        device=runtime.device, **options)


def submit_trainings(ex, hparams: list[Hparams], runtime: Runtime, diverged_ok: bool = False) -> dict:
    """Submit a `train_job` per Hparams to executor `ex`; a run that starts from another run of the list
    (`init_from`) waits for it. Returns run id → task, in list order (a parent must come before its
    children)."""
    tasks = {}
    for hp in hparams:
        parent = tasks.get(hp.init_from.split("@")[0]) if hp.init_from else None
        tasks[hp.run_id()] = ex.submit(train_job, hp, runtime, parent, diverged_ok)
    return tasks
