"""One LeNet-300-100 epoch on 60k MNIST-shaped examples at batch 128, 2 threads.

Times, in one run: losspath's training loop (the whole `train` call of a 1-epoch run, checkpoints and
evaluation included), an idiomatic DataLoader loop doing the same SGD updates, and the FLOP limit
(3 × forward FLOPs × 60k ÷ measured GEMM rate). Prints the ratios. Goal: ≤ 1.3× the FLOP limit and
≥ 1.7× faster than the DataLoader loop.

Run: python benchmarks/train_throughput.py
"""
from __future__ import annotations

import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from common import best_of, forward_flops, gemm_flops_per_second
from losspath.data import Dataset, Split
from losspath.hparams import Hparams
from losspath.models import build_model
from losspath.training import train

torch.set_num_threads(2)
N_TRAIN, N_TEST, BATCH = 60_000, 10_000, 128


def data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    split = lambda n: Split(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), 10)
    return Dataset("mnist_shaped", split(N_TRAIN), split(N_TEST))


def ours(ds: Dataset) -> float:
    hp = Hparams(dataset="mnist_shaped", model="lenet_300_100", steps="1ep", batch_size=BATCH, lr=0.1)
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        train(hp, root=root, dataset=ds, progress=False)
        return time.perf_counter() - t0


def dataloader_loop(ds: Dataset) -> float:
    model = build_model("lenet_300_100", (1, 28, 28), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(ds.train.inputs, ds.train.targets), batch_size=BATCH, shuffle=True)
    t0 = time.perf_counter()
    for x, y in loader:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ds = data()
    flops = 3 * forward_flops(build_model("lenet_300_100", (1, 28, 28), 10), ds.train.inputs) * N_TRAIN
    rate = gemm_flops_per_second()
    limit = flops / rate
    t_ours = best_of(lambda: ours(ds), repeats=3)
    t_loader = best_of(lambda: dataloader_loop(ds), repeats=3)
    print(f"GEMM rate                 {rate / 1e9:8.1f} GFLOP/s (2 threads)")
    print(f"FLOP limit                {limit:8.3f} s  (3 × {flops / 3 / N_TRAIN / 1e6:.3f} MFLOP × {N_TRAIN})")
    print(f"losspath train (1 epoch)  {t_ours:8.3f} s")
    print(f"DataLoader loop           {t_loader:8.3f} s")
    print(f"ratio ours / FLOP limit   {t_ours / limit:8.2f}×   (goal ≤ 1.3)")
    print(f"speed-up vs DataLoader    {t_loader / t_ours:8.2f}×   (goal ≥ 1.7)")


if __name__ == "__main__":
    main()
