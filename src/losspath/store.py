"""The run store: one directory per set of hyperparameters, named by their hash (OpenLTH's idea).

A run directory holds
  hparams.json              the hyperparameters (all fields)
  run.json                  iterations per epoch, last iteration, the checkpoint schedule
  step_<it>.safetensors     the weights at iteration <it>, written atomically
  resume.safetensors        weights + optimizer state + iteration, for resuming an interrupted run
  metrics.csv               step, split, loss, error
  DONE                      completion marker (JSON: final metrics, wall time, a manifest of the run's files)
  .lock                     held while a process trains the run
  lines/                    cached lines from this run's checkpoints (run_lines.run_line)
  evals/                    cached evaluations of single checkpoints (loss and error on a split)
  aligned/                  this run's last state permuted to match another run's (aligned_lines)
  aligned_lines/            cached lines from this run to another run's aligned state
`Run` names every one of these files and folders; other modules ask it for the path.

Every file carries a sha256 recorded when it was written (JSON: a `sha256` field; safetensors: in the metadata;
metrics.csv: in DONE's manifest and, while training, in the resume point), and hparams.json must hash to the
directory's name; `Run.verify` checks a finished run, and reading a damaged file raises `DamagedFile`.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import LosspathError
from .files import CHECKSUM_KEY, RETRAIN, DamagedFile, file_digest, load_checksummed, read_json, read_safetensors
from .hparams import Hparams
from .steps import parse_step

HPARAMS_FILE = "hparams.json"  # the one name Run.open needs before there is a Run

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
        """Open an existing run directory (one that holds hparams.json that hashes to the directory's name)."""
        d = Path(run_dir)
        f = d / HPARAMS_FILE
        if not f.is_file():
            raise LosspathError(f"{d} is not a losspath run directory (no hparams.json in it).")
        try:
            hp = Hparams.from_dict(read_json(f, required=False))
        except DamagedFile as e:
            raise DamagedFile(f, e.reason, RETRAIN) from None
        except (LosspathError, TypeError) as e:
            raise DamagedFile(f, f"not valid run metadata: {e}", RETRAIN) from None
        if d.name.startswith("train_") and hp.run_id() != d.name:
            raise DamagedFile(f, f"its hyperparameters hash to {hp.run_id()}, not to the directory's name", RETRAIN)
        return cls(d, hp)

    @property
    def hparams_file(self) -> Path:
        return self.dir / HPARAMS_FILE

    @property
    def info_file(self) -> Path:
        """run.json: the plan of the run (iterations per epoch, last iteration, checkpoint schedule)."""
        return self.dir / "run.json"

    @property
    def metrics_file(self) -> Path:
        return self.dir / "metrics.csv"

    @property
    def resume_file(self) -> Path:
        """Weights, optimizer state and iteration of an interrupted run."""
        return self.dir / "resume.safetensors"

    @property
    def done_file(self) -> Path:
        return self.dir / "DONE"

    @property
    def lock_file(self) -> Path:
        return self.dir / ".lock"

    def checkpoint(self, iteration: int) -> Path:
        return self.dir / f"step_{iteration}.safetensors"

    def line_cache(self, start: int, end: str, split: str, key: str) -> Path:
        """The cached line from this run's `start` to `end` (an iteration, or "<other run>.<iteration>"), `key`
        hashing everything else that defines it."""
        return self.dir / "lines" / f"{start}-{end}-{split}-{key}.safetensors"

    def eval_cache(self, step: int, dataset: str, split: str) -> Path:
        """The cached loss and error of the checkpoint at `step` on a split of `dataset`."""
        return self.dir / "evals" / f"{step}-{dataset}-{split}.json"

    def aligned_state(self, method: str, other: str, other_step: int, step: int) -> Path:
        """This run's state at `step` permuted by `method` to match run `other` (a directory name) at `other_step`."""
        return self.dir / "aligned" / f"{method}-to-{other}-{other_step}-{step}.safetensors"

    def aligned_line_cache(self, method: str, split: str, key: str) -> Path:
        """The cached line from this run to another run aligned to it by `method`, `key` hashing the rest."""
        return self.dir / "aligned_lines" / f"{method}-{split}-{key}.safetensors"

    def info(self) -> dict:
        """run.json: iterations_per_epoch, last_step, schedule ({} before training started)."""
        f = self.info_file
        return self._read(f) if f.is_file() else {}

    @property
    def is_complete(self) -> bool:
        return self.done_file.is_file()

    def done(self) -> dict:
        return self._read(self.done_file) if self.is_complete else {}

    def _read(self, f: Path) -> dict:
        try:
            return read_json(f)
        except DamagedFile as e:
            raise DamagedFile(f, e.reason, RETRAIN) from None

    def load_checkpoint(self, step: int | str) -> dict:
        """The state at `step`, its checksum checked; `DamagedFile` naming the file when it does not match."""
        p = self.state_path(step)
        try:
            return load_checksummed(p)[0]
        except DamagedFile as e:
            raise DamagedFile(p, e.reason, RETRAIN) from None

    def manifest(self, schedule: list[int]) -> dict[str, str]:
        """sha256 of the run's files, as DONE records them (checkpoints: the digest in their metadata)."""
        files = {f.name: file_digest(f) for f in (self.hparams_file, self.info_file, self.metrics_file)}
        for t in schedule:
            files[self.checkpoint(t).name] = read_safetensors(self.checkpoint(t))[1].get(CHECKSUM_KEY, "")
        return files

    def verify(self) -> str | None:
        """None when a finished run's files all read back as written; otherwise a sentence saying which does not.

        Every checkpoint is read in full and checked against its checksum and DONE's manifest.
        """
        try:
            Run.open(self.dir)
            files, schedule = self.done()["files"], self.info()["schedule"]
            for t in schedule:
                name = self.checkpoint(t).name
                if name not in files:
                    return f"{self.done_file} does not list {name}"
            for name, digest in files.items():
                path = self.dir / name
                if not path.is_file():
                    return f"{path} is missing"
                if name.endswith(".safetensors"):
                    ok = load_checksummed(path)[1][CHECKSUM_KEY] == digest
                else:
                    ok = file_digest(path) == digest
                if not ok:
                    return f"{path} is not the file the run wrote (its checksum differs from DONE's)"
        except DamagedFile as e:
            return f"{e.path} is damaged ({e.reason})"
        except (KeyError, TypeError, AttributeError):
            return f"{self.done_file} lacks the manifest of the run's files"
        return None

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
def run_lock(run: Run):
    """Hold the run's lock file; a second process trying to train the same run gets a clear error."""
    run.dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run.lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LosspathError(f"Run {run.dir} is being trained by another process (its .lock is held).") from None
    try:
        yield
    finally:
        lock.release()


def list_runs(root: str | Path | None = None) -> list[dict]:
    """One row per run directory under `root`: name, state, saved checkpoints, data set, model, test error,
    date (of its last change), what made it (DONE's `made_with`: threads, torch, device) and the other
    non-default hparams. A run whose files do not read back is
    listed as `damaged`."""
    root = Path(root or default_root())
    rows = []
    for d in sorted(root.glob("train_*")):
        if not d.is_dir():
            continue
        row = dict(run=d.name, state="damaged", saved=0, dataset="?", model="?", test_error=None, made_with=None,
                   date=time.strftime("%Y-%m-%d %H:%M", time.localtime(d.stat().st_mtime)), rest={})
        try:
            run = Run.open(d)
            info, done = run.info(), run.done()
            row.update(state="complete" if done else ("partial" if info else "new"),
                       saved=len(run.saved_steps()), dataset=run.hparams.dataset, model=run.hparams.model,
                       test_error=done.get("test_error"), made_with=done.get("made_with"),
                       rest={k: v for k, v in run.hparams.non_default().items() if k not in ("dataset", "model")})
        except LosspathError:
            pass
        rows.append(row)
    return rows
