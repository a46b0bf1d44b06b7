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
