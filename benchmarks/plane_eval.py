"""Plane evaluation speed: losspath's evaluate_plane vs a plain per-point load_state_dict loop (what Li et al.
2018's loss-landscape tool does: set the weights of one grid point, evaluate, repeat), same run, same grid (extrapolated beyond the three states):
a 51×51 plane of LeNet-300-100 on 10k MNIST-shaped examples, and a CIFAR ResNet-20 at a smaller grid.

    PYTHONPATH=src python benchmarks/plane_eval.py --threads 1            # full run (~3 minutes on one core)
    PYTHONPATH=src python benchmarks/plane_eval.py --threads 1 --quick    # smaller sizes, for a smoke test

The plane is the one through three networks (seeds 0, 1, 2; planes.plane_through), the grid spans the three
points with a margin. Every timing is the best of `--repeats` runs of each method, interleaved; the largest
difference between the two methods' losses is printed next to the ratio.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from losspath.models import build_model  # noqa: E402
from losspath.planes import evaluate_plane, plane_through, state_at  # noqa: E402


def plain_plane(model, plane, a_values, b_values, x, y, batch=1000):
    """The textbook loop: for every grid point load origin + a·u + b·v with load_state_dict, evaluate in batches."""
    net = copy.deepcopy(model).eval()
    loss = np.zeros((len(a_values), len(b_values)))
    with torch.inference_mode():
        for i, a in enumerate(a_values):
            for j, b in enumerate(b_values):
                net.load_state_dict(state_at(plane, a, b))
                total = 0.0
                for k in range(0, len(y), batch):
                    total += F.cross_entropy(net(x[k : k + batch]), y[k : k + batch], reduction="sum").item()
                loss[i, j] = total / len(y)
    return loss


def grid(plane, points):
    coords = np.array(list(plane.points.values()))
    axes = []
    for i in (0, 1):
        low, high = coords[:, i].min(), coords[:, i].max()
        margin = 0.25 * (high - low)
        axes.append(np.linspace(low - margin, high + margin, points))
    return axes


def case(name, shape, n, points, repeats, batch):
    print(f"\n== {name}: {points}×{points} plane, {n} random examples of shape {shape}, "
          f"{torch.get_num_threads()} thread(s) ==")
    torch.manual_seed(0)
    x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
    nets = [build_model(name, shape, 10, seed=s) for s in range(3)]
    plane = plane_through(*[net.state_dict() for net in nets])
    a_values, b_values = grid(plane, points)
    evaluate_plane(nets[0], plane, (x[:256], y[:256]), grid=(a_values[:2], b_values), progress=False)  # warm-up
    best = {}
    for _ in range(repeats):
        for method, run in (("losspath evaluate_plane", lambda: evaluate_plane(nets[0], plane, (x, y),
                                                                               grid=(a_values, b_values),
                                                                               progress=False)),
                            ("plain load_state_dict loop", lambda: plain_plane(nets[0], plane, a_values, b_values,
                                                                               x, y, batch))):
            start = time.perf_counter()
            value = run()
            wall = time.perf_counter() - start
            if method not in best or wall < best[method][0]:
                best[method] = (wall, value)
    ours, plain = best["losspath evaluate_plane"], best["plain load_state_dict loop"]
    gap = np.nanmax(np.abs(ours[1].loss - plain[1]) / np.maximum(np.abs(plain[1]), 1e-12))
    print(f"row plan: {ours[1].info['row_plan']}")
    for method, (wall, _) in best.items():
        print(f"{method:30s} {wall:8.2f} s  ({wall / points**2 * 1e3:6.2f} ms per grid point)")
    print(f"ratio (plain ÷ losspath): {plain[0] / ours[0]:.1f}x; max relative loss difference = {gap:.1e}")
    return plain[0] / ours[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="21×21 LeNet on 2k examples, 5×5 ResNet-20 on 200")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    lenet = (21, 2000) if args.quick else (51, 10_000)
    resnet = (5, 200) if args.quick else (9, 500)
    case("lenet_300_100", (1, 28, 28), lenet[1], lenet[0], args.repeats, 1000)
    case("cifar_resnet_20", (3, 32, 32), resnet[1], resnet[0], args.repeats, 250)


if __name__ == "__main__":
    main()
