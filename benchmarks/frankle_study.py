"""The full Frankle 2020 LeNet-300-100 study on MNIST-shaped data, timed against a plain implementation.

MNIST-shaped: 60,000 train / 10,000 test 1×28×28 inputs of a learnable synthetic problem (MNIST cannot be
downloaded here). Ours: 3 replicates × 40 epochs (OpenLTH's LeNet hyperparameters), a line from every saved
start step to the end at 100 points on the test set — the whole study through `run_study`'s parts.
Plain: one replicate with a DataLoader training loop and, per point, load_state_dict + a forward pass over the
test set. Goal: our whole study (3 replicates) ≤ 5 minutes on 2 cores.

Run: python benchmarks/frankle_study.py [--epochs 40] [--replicates 3]
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from losspath.data import Dataset, Split
from losspath.hparams import Hparams
from losspath.run_lines import run_line
from losspath.models import build_model
from losspath.steps import frankle_schedule, iterations_per_epoch
from losspath.training import model_for, train

torch.set_num_threads(2)


def mnist_shaped(n_train=60_000, n_test=10_000) -> Dataset:
    """A fixed random linear teacher labels Gaussian images: learnable, MNIST-sized."""
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(784, 10, generator=g)

    def split(n):
        x = torch.randn(n, 1, 28, 28, generator=g)
        return Split(x, (x.view(n, -1) @ teacher + 3 * torch.randn(n, 10, generator=g)).argmax(1), 10)

    return Dataset("mnist_shaped", split(n_train), split(n_test))


def ours(data: Dataset, epochs: int, replicates: int, root: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    lines = 0
    for r in range(replicates):
        hp = Hparams(dataset="mnist_shaped", model="lenet_300_100", lr=0.1, batch_size=128, steps=f"{epochs}ep", seed=r)
        run = train(hp, root=root, dataset=data, progress=False)
        model = model_for(hp, data)
        last = run.done()["last_step"]
        for t in run.saved_steps()[:-1]:
            run_line(run, model, data, t, last, points=100)
            lines += 1
    return time.perf_counter() - t0, lines


def plain(data: Dataset, epochs: int) -> float:
    """One replicate, the way it is usually written."""
    t0 = time.perf_counter()
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(data.train.inputs, data.train.targets), batch_size=128, shuffle=True)
    last = epochs * iterations_per_epoch(len(data.train), 128)
    schedule, states, it = set(frankle_schedule(last)), {}, 0
    for _ in range(epochs):
        for x, y in loader:
            if it in schedule:
                states[it] = copy.deepcopy(model.state_dict())
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            it += 1
    end = copy.deepcopy(model.state_dict())
    test = DataLoader(TensorDataset(data.test.inputs, data.test.targets), batch_size=1000)
    probe = copy.deepcopy(model).eval()
    for t, start in states.items():
        for a in np.linspace(0, 1, 100):
            probe.load_state_dict({k: (1 - a) * start[k] + a * end[k] for k in start})
            with torch.no_grad():
                for x, y in test:
                    F.cross_entropy(probe(x), y)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--replicates", type=int, default=3)
    args = ap.parse_args()
    data = mnist_shaped()
    with tempfile.TemporaryDirectory() as root:
        t_ours, lines = ours(data, args.epochs, args.replicates, root)
    t_plain = plain(data, args.epochs)
    print(f"losspath study: {args.replicates} replicates × {args.epochs} epochs, {lines} lines × 100 points: "
          f"{t_ours:7.1f} s  (goal ≤ 300 s)")
    print(f"plain implementation, 1 replicate:                          {t_plain:7.1f} s")
    print(f"per replicate: ours {t_ours / args.replicates:.1f} s vs plain {t_plain:.1f} s → "
          f"{t_plain / (t_ours / args.replicates):.1f}× faster")


if __name__ == "__main__":
    main()
