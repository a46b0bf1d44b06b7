"""Line evaluation speed: losspath's engine vs loss-landscapes, a plain load_state_dict loop and the dense
FLOP limit, all measured in this run (Frankle 2020's setting: 100 points, LeNet-300-100 on MNIST-shaped data);
a CIFAR ResNet-20; and a small GPT-2-style language model against a plain loop (per-token loss).

    PYTHONPATH=src python benchmarks/line_eval.py            # full run (a few minutes on 2 cores)
    PYTHONPATH=src python benchmarks/line_eval.py --quick    # smaller sizes, for a smoke test
    PYTHONPATH=src python benchmarks/line_eval.py --lenet-only --neighbour   # next to a CPU-bound neighbour

`--threads N` sets torch's thread count for every method (default 1, losspath's default); `--neighbour` runs
the LeNet case next to one spinning process per usable core, as on a machine other jobs share.

Every timing is the best (and the median) of `--repeats` interleaved runs (robust to other processes on the
machine); CPU seconds (this process, all threads) are printed too. Peak RSS is measured in fresh subprocesses, one per
configuration, each reporting its own VmHWM (/proc/self/status; ru_maxrss would carry over the parent's
peak through fork + exec).
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import BusyNeighbour, interpolated, plain_line  # noqa: E402

from losspath.lines import evaluate_line  # noqa: E402
from losspath.models import build_model  # noqa: E402

THREADS = 1  # --threads


def timed(fn, repeats: int, results: dict, name: str):
    """Run fn, keep its best wall time, the CPU time of that run and every wall time (for the median)."""
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        walls = results[name][3] if name in results else []
        if name not in results or wall < results[name][0]:
            results[name] = (wall, cpu, value, walls)
        walls.append(wall)


def endpoints(name, shape):
    start = build_model(name, shape, 10, seed=0)
    end = build_model(name, shape, 10, seed=1)
    return start, end


def forward_flops(model, x) -> float:
    """Multiply-adds × 2 of the Linear and Conv layers for one forward of x."""
    flops = [0.0]

    def count(m, args, out):
        if isinstance(m, nn.Linear):
            flops[0] += 2.0 * out.numel() * m.in_features
        elif isinstance(m, nn.modules.conv._ConvNd):
            flops[0] += 2.0 * out.numel() * (m.in_channels // m.groups) * int(np.prod(m.kernel_size))

    handles = [m.register_forward_hook(count) for m in model.modules()]
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return flops[0]


def gemm_rate(m, k, n, repeats=5) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * m * k * n / best


def loss_landscapes_line(model_start, model_end, x, y, steps):
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(nn.CrossEntropyLoss(), x, y)
    return loss_landscapes.linear_interpolation(model_start, model_end, metric, steps, deepcopy_model=True)


def lenet_case(n, points, repeats):
    print(f"\n== LeNet-300-100, {points} points, {n} MNIST-shaped random examples, {THREADS} threads ==")
    torch.manual_seed(0)
    x, y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
    model_start, model_end = endpoints("lenet_300_100", (1, 28, 28))
    start, end = model_start.state_dict(), model_end.state_dict()
    alphas = np.linspace(0, 1, points)
    results = {}
    try:
        import loss_landscapes  # noqa: F401

        have_ll = True
    except Exception as e:  # noqa: BLE001
        print(f"loss-landscapes unavailable: {type(e).__name__}: {e}")
        have_ll = False
    warm = time.perf_counter()  # warm-up; the first one in a fresh checkout also compiles the numba kernels
    evaluate_line(model_start, start, end, (x[:500], y[:500]), points=points, progress=False)
    print(f"warm-up call (500 examples; includes kernel compilation or cache load): "
          f"{time.perf_counter() - warm:.2f} s")
    for _ in range(repeats):
        timed(lambda: evaluate_line(model_start, start, end, (x, y), points=points, progress=False), 1, results,
              "losspath evaluate_line")
        timed(lambda: evaluate_line(model_start, start, end, (x, y), points=points, progress=False,
                                    relu_shortcut=False), 1, results, "losspath, first-layer shortcut only")
        timed(lambda: evaluate_line(model_start, start, end, (x, y), points=points, progress=False,
                                    first_layer_shortcut=False), 1, results, "losspath, no shortcuts")
        if have_ll:
            timed(lambda: loss_landscapes_line(model_start, model_end, x, y, points), 1, results,
                  "loss_landscapes.linear_interpolation")
        timed(lambda: plain_line(model_start, start, end, x, y, alphas), 1, results, "plain load_state_dict loop")
    flops = forward_flops(model_start, x[:1]) * n * points
    rate = gemm_rate(n, 784, 300)
    results["dense FLOP limit"] = (flops / rate, float("nan"), None, [])
    print(f"forward: {flops / n / points / 1e6:.3f} MFLOP/example; GEMM {n}x784x300: {rate / 1e9:.0f} GFLOP/s")
    ours = results["losspath evaluate_line"]
    print(f"engine plan: {ours[2].info}")
    plain = results["plain load_state_dict loop"][2]
    print(f"max |loss - plain loop| = {np.max(np.abs(ours[2].loss - plain)):.2e}")
    if have_ll:
        ll = results["loss_landscapes.linear_interpolation"][2]  # at α = 1/steps ... 1
        print(f"loss-landscapes at α=1: {ll[-1]:.6f}, ours: {ours[2].loss[-1]:.6f}")
    table(results, "losspath evaluate_line")
    return results


def resnet_case(n_test, n_train, points, repeats):
    print(f"\n== CIFAR ResNet-20, {points} points, {n_test} test / {n_train} train CIFAR-shaped random examples ==")
    torch.manual_seed(0)
    x, y = torch.randn(n_test, 3, 32, 32), torch.randint(0, 10, (n_test,))
    train = (torch.randn(n_train, 3, 32, 32), torch.randint(0, 10, (n_train,)))
    model_start, model_end = endpoints("cifar_resnet_20", (3, 32, 32))
    start, end = model_start.state_dict(), model_end.state_dict()
    alphas = np.linspace(0, 1, points)
    results = {}
    for _ in range(repeats):
        timed(lambda: evaluate_line(model_start, start, end, (x, y), points=points, progress=False), 1, results,
              "losspath, BN interpolate")
        timed(lambda: plain_line(model_start, start, end, x, y, alphas, batch=200), 1, results,
              "plain loop, BN interpolate")
        timed(lambda: evaluate_line(model_start, start, end, (x, y), points=points, progress=False,
                                    batchnorm="recompute", train_data=train), 1, results, "losspath, BN recompute")
        timed(lambda: plain_line(model_start, start, end, x, y, alphas, batch=200, train=train), 1, results,
              "plain loop, BN recompute")
    for mode in ("interpolate", "recompute"):
        ours, plain = results[f"losspath, BN {mode}"][2], results[f"plain loop, BN {mode}"][2]
        print(f"BN {mode}: max |loss - plain loop| = {np.max(np.abs(ours.loss - plain)):.2e}; plan {ours.info}")
    table(results, "losspath, BN interpolate")
    return results


def plain_lm_line(model, start, end, data, alphas, batch=32):
    """The textbook loop for a causal LM: load θ(α), forward, shifted cross-entropy summed over scored tokens."""
    net = copy.deepcopy(model).eval()
    losses = []
    with torch.inference_mode():
        for a in alphas:
            net.load_state_dict(interpolated(start, end, a))
            total = count = 0.0
            for i in range(0, len(data["input_ids"]), batch):
                logits = net(input_ids=data["input_ids"][i : i + batch]).logits[:, :-1]
                labels = data["labels"][i : i + batch, 1:]
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                         ignore_index=-100, reduction="sum").item()
                count += int((labels != -100).sum())
            losses.append(total / count)
    return np.array(losses)


def lm_case(n, points, repeats):
    """A small GPT-2-style causal LM (transformers, built from a config), per-token loss along the line."""
    try:
        import transformers
    except ImportError as e:
        print(f"\ntransformers unavailable ({e}); no language-model row")
        return {}
    print(f"\n== GPT-2-style LM (2 layers, width 64, vocab 96), {points} points, {n} sequences of 64 tokens ==")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=96, n_positions=128, n_embd=64, n_layer=2, n_head=4,
                                     bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(config).eval()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    end = {k: v + 0.02 * torch.randn(v.shape) if v.is_floating_point() else v for k, v in start.items()}
    end["lm_head.weight"] = end["transformer.wte.weight"]  # tied, as in every GPT-2 state
    ids = torch.randint(0, 96, (n, 64))
    data = {"input_ids": ids, "labels": ids}
    alphas = np.linspace(0, 1, points)
    results = {}

    def ours(**kw):
        return evaluate_line(model, start, end, data, points=points, loss="lm_cross_entropy", batch_size=32,
                             progress=False, **kw)

    for _ in range(repeats):
        timed(lambda: ours(), 1, results, "losspath evaluate_line (vectorized)")
        timed(lambda: ours(vectorize=False), 1, results, "losspath, one alpha at a time")
        timed(lambda: plain_lm_line(model, start, end, data, alphas), 1, results, "plain load_state_dict loop")
    mine, plain = results["losspath evaluate_line (vectorized)"][2], results["plain load_state_dict loop"][2]
    print(f"max |loss - plain loop| = {np.max(np.abs(mine.loss - plain)):.2e}; plan {mine.info}")
    table(results, "losspath evaluate_line (vectorized)")
    return results


def table(results, ours_key):
    """Best and median wall time of each method and their ratios to ours (best to best, median to median)."""
    def median(name):
        walls = results[name][3]
        return float(np.median(walls)) if walls else results[name][0]

    ours, ours_median = results[ours_key][0], median(ours_key)
    print(f"{'method':40s} {'best s':>8s} {'median s':>9s} {'cpu s':>8s}   ÷ {ours_key[:22]} (best, median)")
    for name, (wall, cpu, _, _) in results.items():
        ratios = f"{wall / ours:6.1f}x {median(name) / ours_median:6.1f}x"
        print(f"{name:40s} {wall:8.3f} {median(name):9.3f} {cpu:8.2f}   {ratios}")


def rss_child(case: str, points: int, n: int) -> None:
    """Subprocess body: one evaluation, then print this process's peak RSS (MiB) as JSON."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    if case == "lenet":
        x, y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
        s, e = endpoints("lenet_300_100", (1, 28, 28))
    else:
        x, y = torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))
        s, e = endpoints("cifar_resnet_20", (3, 32, 32))
    if points > 0:
        evaluate_line(s, s.state_dict(), e.state_dict(), (x, y), points=points, progress=False)
    print(json.dumps({"rss_mib": peak_rss_self_mib()}))


def peak_rss_self_mib() -> float:
    """This process's peak resident set: VmHWM on Linux (reset by exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(case: str, points: int, n: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--rss-child", case, str(points), str(n), str(THREADS)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["rss_mib"]


def memory_case(case: str, n: int, points: int):
    base, one, many = (peak_rss(case, p, n) for p in (0, 1, points))
    print(f"{case}: peak RSS  setup only {base:.0f} MiB | 1 point {one:.0f} MiB | {points} points {many:.0f} MiB"
          f"  → {many / one:.2f}x the single-point peak (goal ≤ 2x)")


def main():
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--neighbour", action="store_true", help="The LeNet case next to a busy neighbour.")
    parser.add_argument("--lenet-only", action="store_true")
    parser.add_argument("--rss-child", nargs=4, metavar=("CASE", "POINTS", "N", "THREADS"))
    args = parser.parse_args()
    THREADS = int(args.rss_child[3]) if args.rss_child else args.threads
    if args.rss_child:
        case, points, n, _ = args.rss_child
        return rss_child(case, int(points), int(n))
    torch.set_num_threads(THREADS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    n, rn_test, rn_train = (2000, 200, 400) if args.quick else (10_000, 1000, 2000)
    if args.neighbour:
        with BusyNeighbour() as neighbour:
            print(f"next to a neighbour: {neighbour.n} spinning processes")
            lenet_case(n, 100, args.repeats)
    else:
        lenet_case(n, 100, args.repeats)
    if args.lenet_only:
        return
    resnet_case(rn_test, rn_train, 11, 1)  # FLOP-bound and slow: one run each
    lm_case(32 if args.quick else 128, 25, 3)
    print("\n== peak memory (fresh subprocess per row) ==")
    memory_case("lenet", n, 100)
    memory_case("resnet", rn_test, 11)


if __name__ == "__main__":
    main()
