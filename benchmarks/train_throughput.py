"""Training throughput, restated (issue 15): what losspath's loop costs above the arithmetic of training.

LeNet-300-100 at batch 128 on 60k MNIST-shaped examples, 1 torch thread. Timed in the same run, interleaved:

  pure step      forward + backward + SGD step on batches sliced beforehand: nothing but the arithmetic
  + gather       the same with each shuffled batch gathered from the data set inside the timed loop
                 (`index_select` of 128 random rows, as `Split.batch` does): the part of data loading no loop avoids
  losspath loop  the iterations of losspath's own loop (`training.train`), timed between iterations WARM and
                 LAST_TIMED of the first epoch, where no checkpoint is saved and nothing is evaluated: the batch
                 gather from a per-epoch permutation, the learning-rate schedule, the loss/error bookkeeping and
                 the divergence check are what it adds
  saves, evaluation  separately: one checkpoint (the loop writes it and, at checkpoints, a resume point too)
                 and one evaluation of the 10k test examples (at every epoch end)

Prints the loop's overhead above the pure step (goal ≤ 10% of the step time) and the cost of one epoch's saves and
evaluation under the Frankle schedule. Earlier versions compared the whole `train` call with a DataLoader loop
(0.98×) and a FLOP limit; both mixed the loop's cost with checkpoint saves and the arithmetic itself.

Run: python benchmarks/train_throughput.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import losspath.training.loop as loop  # noqa: E402
from losspath.checkpoints import save_state  # noqa: E402
from losspath.data import Dataset, Split  # noqa: E402
from losspath.hparams import Hparams  # noqa: E402
from losspath.models import build_model  # noqa: E402
from losspath.steps import checkpoint_schedule  # noqa: E402
from losspath.training import epoch_order, evaluate, train  # noqa: E402

N_TRAIN, N_TEST, BATCH = 60_000, 10_000, 128
WARM, LAST_TIMED = 20, 420  # iterations of epoch 0 (469 iterations) between which the loop is timed


def data() -> Dataset:
    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), 10)

    return Dataset("mnist_shaped", split(N_TRAIN), split(N_TEST))


def hparams() -> Hparams:
    return Hparams(dataset="mnist_shaped", model="lenet_300_100", steps=f"{LAST_TIMED + 1}it", batch_size=BATCH,
                   lr=0.1, checkpoints="0,last")


def loop_iterations(ds: Dataset) -> list[float]:
    """Seconds of each iteration of losspath's loop from WARM to LAST_TIMED (stamped when the loop asks for the
    learning rate, once at the start of each iteration)."""
    stamps = {}
    real = loop.lr_at

    def stamping(t, *args):
        if WARM <= t <= LAST_TIMED:
            stamps[t] = time.perf_counter()
        return real(t, *args)

    loop.lr_at = stamping
    try:
        with tempfile.TemporaryDirectory() as root:
            train(hparams(), root=root, dataset=ds, progress=False)
    finally:
        loop.lr_at = real
    return [stamps[t + 1] - stamps[t] for t in range(WARM, LAST_TIMED)]


def pure_iterations(ds: Dataset, gather: bool = False) -> list[float]:
    """Seconds of each forward + backward + SGD step on the same batches, sliced beforehand (`gather`: gathered
    from the data set in the timed loop instead)."""
    hp = hparams()
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=hp.seed)
    opt = torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    order = epoch_order(N_TRAIN, hp.order_seed, 0)
    batches = [(ds.train.inputs[order[i * BATCH:(i + 1) * BATCH]], ds.train.targets[order[i * BATCH:(i + 1) * BATCH]])
               for i in range(LAST_TIMED)]
    for x, y in batches[:WARM]:  # the same warm-up as the loop
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    stamps = [time.perf_counter()]
    for i, (x, y) in enumerate(batches[WARM:], WARM):
        if gather:
            index = order[i * BATCH:(i + 1) * BATCH]
            x, y = ds.train.inputs.index_select(0, index), ds.train.targets.index_select(0, index)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps, stamps[1:])]


def save_seconds() -> float:
    state = build_model("lenet_300_100", (1, 28, 28), 10).state_dict()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        save_state(Path(d) / "step.safetensors", state)
        return time.perf_counter() - t0


def evaluation_seconds(ds: Dataset) -> float:
    model = build_model("lenet_300_100", (1, 28, 28), 10)
    t0 = time.perf_counter()
    evaluate(model, ds.test)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="losspath's training loop vs the pure training step")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; the best and the median")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ds = data()
    times = {name: [] for name in ("save", "evaluation")}
    steps = {"loop": [], "pure": [], "gather": []}  # per repeat: each iteration's seconds
    for _ in range(args.repeats):
        steps["pure"].append(pure_iterations(ds))
        steps["gather"].append(pure_iterations(ds, gather=True))
        steps["loop"].append(loop_iterations(ds))
        times["save"].append(save_seconds())
        times["evaluation"].append(evaluation_seconds(ds))
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    for name, runs in steps.items():  # per run: the mean and the median iteration; the quietest run counts
        best[name] = min(sum(run) / len(run) for run in runs)
        median[name] = min(statistics.median(run) for run in runs)
    per_epoch = -(-N_TRAIN // BATCH)
    checkpoints_epoch_0 = len(checkpoint_schedule("frankle", per_epoch, per_epoch))  # 0, 1, 2, 4, ..., 256, 469
    print(f"LeNet-300-100, batch {BATCH}, {N_TRAIN:,} MNIST-shaped examples, 1 torch thread; per iteration over "
          f"iterations {WARM}-{LAST_TIMED} of epoch 0: the mean of the best of {args.repeats} interleaved runs (in "
          "brackets: the best run's median iteration, robust to a busy machine); saves and evaluation: best (median)")
    print(f"pure forward+backward+step   {best['pure'] * 1e3:7.3f} ms ({median['pure'] * 1e3:.3f})")
    print(f"  + shuffled-batch gather    {best['gather'] * 1e3:7.3f} ms ({median['gather'] * 1e3:.3f})")
    print(f"losspath loop (no saves)     {best['loop'] * 1e3:7.3f} ms ({median['loop'] * 1e3:.3f})")
    for label, a, b in (("loop overhead above the step", "loop", "pure"), ("  of which the gather       ", "gather", "pure")):
        print(f"{label} {100 * (best[a] - best[b]) / best['pure']:7.1f} %  "
              f"({100 * (median[a] - median[b]) / median['pure']:.1f} % of the medians)")
    print(f"  the rest (the loop itself) {100 * (best['loop'] - best['gather']) / best['pure']:7.1f} %  "
          f"({100 * (median['loop'] - median['gather']) / median['pure']:.1f} % of the medians); goal: overhead "
          "≤ 10 % of the step")
    print(f"one checkpoint save          {best['save'] * 1e3:7.3f} ms ({median['save'] * 1e3:.3f})")
    print(f"one evaluation, {N_TEST:,} test   {best['evaluation'] * 1e3:7.1f} ms ({median['evaluation'] * 1e3:.1f})")
    epoch = per_epoch * best["loop"]
    extra = 2 * checkpoints_epoch_0 * best["save"] + best["evaluation"]
    print(f"first epoch under the Frankle schedule: {per_epoch} iterations {epoch:.2f} s + {checkpoints_epoch_0} "
          f"checkpoints (each also a resume point) and one evaluation {extra:.2f} s ({100 * extra / epoch:.1f} % of "
          f"the iterations); later epochs: one evaluation ({100 * best['evaluation'] / epoch:.1f} %)")


if __name__ == "__main__":
    main()
