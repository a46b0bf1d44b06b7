"""Small real data for tests (importable from subprocesses too)."""
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
