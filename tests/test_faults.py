"""A seeded fault campaign (issue 16): kills at random points of a tiny training run and a tiny study, and random
damage (truncation, zero-fill, bit flips) of every kind of file the run store and the caches write.

Every trial must end in one of two ways: a repair (recomputation or retraining, announced by a `notice:` line
naming the damaged file) that gives bit-identical results, or one `error:` sentence naming the file, exit code 2.
Never a traceback, never a silently different number. Kill trials must end, after a rerun, bit-identical to an
uninterrupted run, with no temporary file left behind and no lock held.

The default campaign takes about a minute; `--slow` (or LOSSPATH_FAULT_TRIALS=N) runs more trials. Both print
their counts (run pytest with -s to see them).
"""
import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock

from losspath.cli import main
from losspath.data import load_dataset
from losspath.hparams import Hparams
from losspath.runtime import Runtime
from losspath.store import Run
from losspath.training import model_for, train

HP = Hparams(dataset="digits", model="mlp_8", steps="2ep", checkpoints="frankle")  # 24 it: 0 1 2 4 8 16 24
STUDY = dict(settings=["digits-mlp"], replicates=1, points=5, steps="1ep")
# the study's jobs run in the process whose writes are counted and killed
KINDS = ("checkpoint", "hparams.json", "run.json", "DONE", "metrics.csv", "resume point", "partial checkpoint",
         "partial metrics.csv", "cached line", "cached evaluation", "data cache")
DAMAGES = ("truncate", "zero-fill", "bit-flip")

# In a child process: run CODE, SIGKILLed at the K-th atomic write, before it, halfway through its temporary file,
# or just after its rename.
KILLER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import losspath.files as files
K, PHASE = {k}, {phase!r}
real, count = files.atomic_write, [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def faulty(path, write):
    count[0] += 1
    if count[0] != K:
        return real(path, write)
    if PHASE == "before":
        die()
    if PHASE == "halfway":
        def half(tmp):
            write(tmp)
            data = open(tmp, "rb").read()
            open(tmp, "wb").write(data[:len(data) // 2])
            die()
        return real(path, half)
    real(path, write)
    die()
files.atomic_write = faulty
{code}
"""
TRAIN_CODE = "from losspath.training import train\nfrom losspath.hparams import Hparams\n" \
             "train(Hparams(**{hp!r}), root={root!r}, progress=False)"
STUDY_CODE = "from losspath.studies.frankle2020 import run_study\nfrom losspath.runtime import Runtime\n" \
             "run_study(out={out!r}, runtime=Runtime(root={root!r}, progress=False, jobs=1), **{study!r})"


class Campaign:
    def __init__(self):
        self.tried, self.passed, self.failures = Counter(), Counter(), []

    def record(self, name: str, problem: str | None) -> None:
        self.tried[name] += 1
        if problem is None:
            self.passed[name] += 1
        else:
            self.failures.append(f"{name}: {problem}")

    def report(self, title: str) -> str:
        rows = [f"{title}: {sum(self.passed.values())}/{sum(self.tried.values())} trials passed"]
        rows += [f"  {name:44s} {self.passed[name]:3d}/{self.tried[name]}" for name in sorted(self.tried)]
        return "\n".join(rows + [f"  FAILED {f}" for f in self.failures])


def count_writes(fn) -> int:
    """How many atomic writes `fn()` makes (so kill points can be drawn among them)."""
    import losspath.files as files

    real, count = files.atomic_write, [0]

    def counting(path, write):
        count[0] += 1
        return real(path, write)

    files.atomic_write = counting
    try:
        fn()
    finally:
        files.atomic_write = real
    return count[0]


def run_captured(fn):
    """(exit code, stderr) of `fn()` run as the CLI runs it (`main` for argument lists)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            fn()
            code = 0
        except SystemExit as e:
            code = e.code
        except Exception as e:  # a traceback in the CLI: always a failure
            return "traceback", f"{type(e).__name__}: {e}"
    return code, err.getvalue()


def damage(path: Path, rng: random.Random) -> str:
    """Damage `path` in place (always changing it); returns what was done."""
    data = bytearray(path.read_bytes())
    kind = rng.choice(DAMAGES)
    if kind == "truncate" or len(data) == 0:
        n = rng.randrange(len(data)) if data else 0
        path.write_bytes(bytes(data[:n]))
        return f"truncate to {n} of {len(data)} bytes"
    if kind == "zero-fill":
        for _ in range(100):
            start = rng.randrange(len(data))
            end = min(len(data), start + rng.randint(1, 64))
            if any(data[start:end]):
                data[start:end] = bytes(end - start)
                path.write_bytes(bytes(data))
                return f"zero bytes {start}-{end} of {len(data)}"
    i, bit = rng.randrange(len(data)), rng.randrange(8)
    data[i] ^= 1 << bit
    path.write_bytes(bytes(data))
    return f"flip bit {bit} of byte {i} of {len(data)}"


def same_run(a: Run, b: Run) -> str | None:
    """None when two runs hold byte-identical checkpoints and metrics, else what differs."""
    if a.saved_steps() != b.saved_steps():
        return f"saved steps {b.saved_steps()} instead of {a.saved_steps()}"
    for t in a.saved_steps():
        if a.checkpoint(t).read_bytes() != b.checkpoint(t).read_bytes():
            return f"checkpoint {t} differs"
    if (a.dir / "metrics.csv").read_bytes() != (b.dir / "metrics.csv").read_bytes():
        return "metrics.csv differs"
    return None


def leftovers(directory: Path) -> str | None:
    """A temporary file or a held lock left anywhere under `directory`."""
    temps = [str(p) for p in directory.rglob("*.tmp")]
    if temps:
        return f"temporary files left: {temps}"
    for lock in directory.rglob(".lock"):
        try:
            FileLock(str(lock)).acquire(timeout=0).lock.release()
        except Exception:
            return f"lock {lock} is held"
    return None


def child(code: str, k: int, phase: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILLER.format(k=k, phase=phase, code=code)],
                          env={**os.environ, "PYTHONPATH": "src"}, capture_output=True, text=True)


# --- the campaign ----------------------------------------------------------------------------------------------


class Fixtures:
    """The reference run, a partial run (killed mid-training), a reference study and its run store."""

    def __init__(self, base: Path):
        torch.set_num_threads(1)
        self.base = base
        self.data = load_dataset("digits")
        self.train_writes = count_writes(lambda: train(HP, root=base / "ref", progress=False))
        self.ref = Run.for_hparams(HP, base / "ref")
        from losspath.run_lines import run_line
        from losspath.training import CheckpointEvaluator

        self.lines = {t: run_line(self.ref, model_for(HP, self.data), self.data, t, points=5) for t in (0, 8)}
        self.evals = {t: CheckpointEvaluator(model_for(HP, self.data), self.data).checkpoint(self.ref, t, "test") for t in (0, 24)}
        proc = child(TRAIN_CODE.format(hp=HP.to_dict(), root=str(base / "partial")), k=12, phase="after")
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        self.partial = Run.for_hparams(HP, base / "partial")
        from losspath.files import read_safetensors

        # the checkpoints up to the resume point are what a resume keeps (later ones are written again)
        self.resume_step = int(read_safetensors(self.partial.dir / "resume.safetensors")[1]["iteration"])
        from losspath.studies.frankle2020 import run_study

        self.study_writes = count_writes(lambda: run_study(out=base / "study_out", **STUDY, runtime=Runtime(
            root=base / "study_runs", progress=False, jobs=1)))
        self.study_tables = {n: (base / "study_out" / n).read_bytes() for n in ("curves.csv", "summary.csv")}
        self.mnist5k = load_dataset("mnist5k", base / "data")  # builds the data cache


def data_cache_trial(fx: Fixtures, rng: random.Random, where: Path) -> str | None:
    from losspath.data import mnist5k

    target = mnist5k.cache_path(where)
    target.parent.mkdir(parents=True)
    shutil.copy(mnist5k.cache_path(fx.base / "data"), target)
    label = f"{target.name}, {damage(target, rng)}"
    loaded = []
    code, err = run_captured(lambda: loaded.append(load_dataset("mnist5k", where)))
    if code != 0:
        return f"{label}: {code} {err}"
    a, b = loaded[0], fx.mnist5k
    same = all(torch.equal(getattr(x, k), getattr(y, k)) for x, y in ((a.train, b.train), (a.test, b.test))
               for k in ("inputs", "targets"))
    return None if same and "notice:" in err and target.name in err else f"{label}: same {same}, {err!r}"


def copy_run(run: Run, root: Path) -> Run:
    shutil.copytree(run.dir, root / run.dir.name)
    return Run(root / run.dir.name, run.hparams)


def corruption_trial(fx: Fixtures, kind: str, rng: random.Random, where: Path) -> str | None:
    """Damage one file of `kind` in a copy of the store, run what reads it; None when the outcome is allowed."""
    if kind == "data cache":
        return data_cache_trial(fx, rng, where)
    partial_kind = kind.startswith("partial") or kind == "resume point"
    run = copy_run(fx.partial if partial_kind else fx.ref, where)
    if kind == "checkpoint":
        target = run.checkpoint(rng.choice(run.saved_steps()))
    elif kind in ("hparams.json", "run.json", "DONE", "metrics.csv"):
        target = run.dir / kind
    elif kind == "resume point":
        target = run.dir / "resume.safetensors"
    elif kind == "partial checkpoint":
        target = run.checkpoint(rng.choice([t for t in run.saved_steps() if t <= fx.resume_step]))
    elif kind == "partial metrics.csv":
        target = run.dir / "metrics.csv"  # the partial run logged only the rows its resume point covers
    elif kind == "cached line":
        target = rng.choice(sorted((run.dir / "lines").glob("*.safetensors")))
    else:
        target = rng.choice(sorted((run.dir / "evals").glob("*.json")))
    what = damage(target, rng)
    label = f"{target.name}, {what}"

    if kind == "cached line":
        from losspath.run_lines import run_line

        t = int(target.name.split("-")[0])
        results = []
        code, err = run_captured(lambda: results.append(run_line(run, model_for(HP, fx.data), fx.data, t, points=5)))
        if code != 0:
            return f"{label}: {code} {err}"
        same = all(np.array_equal(getattr(results[0], k), getattr(fx.lines[t], k)) for k in ("loss", "error"))
        return None if same and "notice:" in err and target.name in err else f"{label}: notice {err!r}, same {same}"
    if kind == "cached evaluation":
        from losspath.training import CheckpointEvaluator

        t = int(target.name.split("-")[0])
        values = []
        code, err = run_captured(lambda: values.append(CheckpointEvaluator(model_for(HP, fx.data), fx.data).checkpoint(run, t, "test")))
        if code != 0:
            return f"{label}: {code} {err}"
        ok = values[0] == fx.evals[t] and "notice:" in err and target.name in err
        return None if ok else f"{label}: {values[0]} vs {fx.evals[t]}, {err!r}"

    if not partial_kind and rng.random() < 0.5:  # a line through the CLI: one sentence naming the file, or no harm
        args = ["line", f"{run.dir}@{target.stem.split('_')[-1] if kind == 'checkpoint' else 0}", f"{run.dir}@last",
                "--points", "3", "-q"]
        code, err = run_captured(lambda: main(args))
        if code == "traceback" or (code != 0 and not (code == 2 and len(err.strip().splitlines()) == 1
                                                      and target.name in err and err.startswith("error: "))):
            return f"{label}: line gave {code} {err!r}"
        if code == 0 and kind not in ("DONE", "metrics.csv"):  # the line reads every other kind it was given
            return f"{label}: line ignored the damage"
    # training again repairs it, announced, and ends bit-identical to the reference
    code, err = run_captured(lambda: main(["train", "--data", HP.dataset, "--model", HP.model, "--steps", HP.steps,
                                           "--root", str(where), "-q", "--threads", "1"]))
    if code != 0 or "notice:" not in err or target.name not in err or "Traceback" in err:
        return f"{label}: train gave {code} {err!r}"
    return same_run(fx.ref, run) or leftovers(where)


def kill_trial(fx: Fixtures, study: bool, rng: random.Random, where: Path) -> str | None:
    k = rng.randint(1, fx.study_writes if study else fx.train_writes)
    phase = rng.choice(["before", "halfway", "after"])
    label = f"kill at write {k} ({phase})"
    if study:
        code = STUDY_CODE.format(out=str(where / "out"), root=str(where / "runs"), study=STUDY)
    else:
        code = TRAIN_CODE.format(hp=HP.to_dict(), root=str(where))
    proc = child(code, k, phase)
    if proc.returncode != -signal.SIGKILL:
        return f"{label}: the child ended with {proc.returncode}: {proc.stderr[-500:]}"
    if study:
        from losspath.studies.frankle2020 import run_study

        rc, err = run_captured(lambda: run_study(out=where / "out", **STUDY,
                                                 runtime=Runtime(root=where / "runs", progress=False, jobs=1)))
        if rc != 0:
            return f"{label}: rerun gave {rc} {err}"
        for name, ref in fx.study_tables.items():
            if (where / "out" / name).read_bytes() != ref:
                return f"{label}: {name} differs after the rerun"
        return leftovers(where)
    rc, err = run_captured(lambda: train(HP, root=where, progress=False))
    if rc != 0:
        return f"{label}: rerun gave {rc} {err}"
    return same_run(fx.ref, Run.for_hparams(HP, where)) or leftovers(where)


def run_campaign(base: Path, seed: int, corruptions: int, train_kills: int, study_kills: int) -> Campaign:
    fx = Fixtures(base / "fixtures")
    rng = random.Random(seed)
    campaign = Campaign()
    for i in range(corruptions):
        kind = KINDS[i % len(KINDS)]  # every kind, in turn
        campaign.record(f"damaged {kind}", corruption_trial(fx, kind, rng, base / f"c{i}"))
    for i in range(train_kills):
        campaign.record("kill -9 during train, rerun", kill_trial(fx, False, rng, base / f"k{i}"))
    for i in range(study_kills):
        campaign.record("kill -9 during reproduce frankle2020, rerun", kill_trial(fx, True, rng, base / f"s{i}"))
    return campaign


def test_fault_campaign(tmp_path):
    campaign = run_campaign(tmp_path, seed=16, corruptions=33, train_kills=5, study_kills=2)
    print("\n" + campaign.report("fault campaign"))
    assert not campaign.failures, campaign.report("fault campaign")


@pytest.mark.slow
def test_fault_campaign_slow(tmp_path, request):
    trials = int(os.environ.get("LOSSPATH_FAULT_TRIALS", "0"))
    if not (trials or request.config.getoption("--slow", default=False)):
        pytest.skip("the long campaign runs with --slow or LOSSPATH_FAULT_TRIALS=N")
    trials = trials or 200
    campaign = run_campaign(tmp_path, seed=1016, corruptions=trials, train_kills=max(1, trials // 5),
                            study_kills=max(1, trials // 20))
    print("\n" + campaign.report("fault campaign (slow)"))
    assert not campaign.failures, campaign.report("fault campaign (slow)")
