"""The run store: one directory per set of hyperparameters, named by their hash (OpenLTH's idea).

A run directory holds
  hparams.json              the hyperparameters (all fields)
  run.json                  iterations per epoch, last iteration, the checkpoint schedule
  step_<it>.safetensors     the weights at iteration <it>, written atomically
  resume.safetensors        weights + optimizer state + iteration, for resuming an interrupted run
  metrics.csv               step, split, loss, error
  DONE                      completion marker (JSON: final metrics, wall time)
  .lock                     held while a process trains the run
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import LosspathError
from .hparams import Hparams
from .steps import parse_step


def default_root() -> Path:
    """`$LOSSPATH_HOME`, else ~/.losspath/runs."""
    return Path(os.environ.get("LOSSPATH_HOME") or Path.home() / ".losspath" / "runs")


@dataclass(frozen=True)
class Run:
    """A run directory and its hyperparameters."""

    dir: Path
    hparams: Hparams

    @classmethod
    def for_hparams(cls, hp: Hparams, root: str | Path | None = None) -> "Run":
        return cls(Path(root or default_root()) / hp.run_id(), hp)

    @classmethod
    def open(cls, run_dir: str | Path) -> "Run":
        """Open an existing run directory (one that holds hparams.json)."""
        d = Path(run_dir)
        f = d / "hparams.json"
        if not f.is_file():
            raise LosspathError(f"{d} is not a losspath run directory (no hparams.json in it).")
        try:
            hp = Hparams.from_dict(json.loads(f.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise LosspathError(f"{f} is not valid run metadata ({e}).") from None
        return cls(d, hp)

    def info(self) -> dict:
        """run.json: iterations_per_epoch, last_step, schedule ({} before training started)."""
        f = self.dir / "run.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    @property
    def is_complete(self) -> bool:
        return (self.dir / "DONE").is_file()

    def done(self) -> dict:
        return json.loads((self.dir / "DONE").read_text()) if self.is_complete else {}

    def checkpoint(self, iteration: int) -> Path:
        return self.dir / f"step_{iteration}.safetensors"

    def saved_steps(self) -> list[int]:
        """Iterations with a saved checkpoint, ascending."""
        its = []
        for p in self.dir.glob("step_*.safetensors"):
            tail = p.stem[len("step_"):]
            if tail.isdigit():
                its.append(int(tail))
        return sorted(its)

    def resolve_step(self, step: int | str) -> int:
        """An iteration from an int, a step string ("2ep", "100it") or "last"."""
        info = self.info()
        if not info:
            raise LosspathError(f"Run {self.dir} has not started training; it has no checkpoints.")
        if isinstance(step, int):
            return step
        s = str(step).strip().lower()
        return int(info["last_step"]) if s == "last" else parse_step(s, int(info["iterations_per_epoch"]))

    def state_path(self, step: int | str) -> Path:
        """The checkpoint file of `step`; a clear error when that step was not saved."""
        it = self.resolve_step(step)
        p = self.checkpoint(it)
        if not p.is_file():
            saved = ", ".join(map(str, self.saved_steps())) or "none"
            raise LosspathError(f"Run {self.dir} has no checkpoint at iteration {it}; saved iterations: {saved}.")
        return p


def checkpoint_path(run_dir: str | Path, step: int | str) -> Path:
    """The checkpoint of a run reference (run directory + step: iteration, "2ep", "100it" or "last")."""
    return Run.open(run_dir).state_path(step)


def parse_run_reference(ref: str) -> tuple[Path, str] | None:
    """Split "RUN_DIR@STEP" into (run_dir, step); None when `ref` is not of that form."""
    if "@" not in ref:
        return None
    d, step = ref.rsplit("@", 1)
    return Path(d), step


@contextmanager
def run_lock(run_dir: Path):
    """Hold the run's lock file; a second process trying to train the same run gets a clear error."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LosspathError(f"Run {run_dir} is being trained by another process (its .lock is held).") from None
    try:
        yield
    finally:
        lock.release()


def list_runs(root: str | Path | None = None) -> list[dict]:
    """One row per run directory under `root`: name, state, saved checkpoints and non-default hparams."""
    root = Path(root or default_root())
    rows = []
    for d in sorted(root.glob("train_*")):
        try:
            run = Run.open(d)
        except LosspathError:
            continue
        state = "complete" if run.is_complete else ("partial" if run.info() else "new")
        rows.append(dict(run=d.name, state=state, checkpoints=len(run.saved_steps()), **run.hparams.non_default()))
    return rows
