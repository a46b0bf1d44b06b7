"""Small real data for tests (importable from subprocesses too)."""
import pytest
import torch

from losspath.data import Dataset, Split


def make_blobs(n_train: int = 200, n_test: int = 100, seed: int = 0) -> Dataset:
    """4 Gaussian blobs in 6-D as (N, 1, 6) inputs: a small, learnable classification problem."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 6, generator=g) * 2

    def make(n):
        y = torch.arange(n) % 4
        x = centers[y] + torch.randn(n, 6, generator=g)
        return Split(x.unsqueeze(1).float(), y.long(), 4)

    return Dataset("blobs", make(n_train), make(n_test))


def run_cli(args, capsys):
    """Run `losspath ARGS` in-process: (exit code, stdout, stderr)."""
    from losspath.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


KILLED_TRAINING = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import losspath.training.loop as loop
from losspath.hparams import Hparams
from helpers import make_blobs
calls = {{"n": 0}}
real = loop.save_state
def save_then_die(*a, **k):
    real(*a, **k)
    calls["n"] += 1
    if calls["n"] == {kill_after}:
        os.kill(os.getpid(), signal.SIGKILL)
loop.save_state = save_then_die
hp = Hparams(**{hp!r})
loop.train(hp, root={root!r}, dataset=make_blobs() if hp.dataset == "blobs" else None, progress=False)
"""


def train_killed_after(hp, root, kill_after: int):
    """Train `hp` (on make_blobs() for data set "blobs", else the named data set) under `root` in a subprocess
    that SIGKILLs itself right after its `kill_after`-th file save; returns the CompletedProcess (returncode
    -SIGKILL when the kill happened)."""
    import os
    import subprocess
    import sys

    script = KILLED_TRAINING.format(tests=os.path.dirname(os.path.abspath(__file__)), kill_after=kill_after,
                                    hp=hp.to_dict(), root=str(root))
    return subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": "src"},
                          capture_output=True, text=True)
