"""The main job (a fixed slice of `losspath reproduce frankle2020`) on idle cores and next to a busy neighbour.

Two runtimes of the same command, each from an empty run store, in fresh processes:
  before  what the study did until now: every job in one process, one after another, with torch's default
          thread count (one per usable core): `--jobs 1 --threads <cores>`.
  now     the default: independent jobs side by side in worker processes, one torch thread each.
Each runs on idle cores, then next to a CPU-bound neighbour (one spinning process per usable core). Printed:
wall time and CPU time (this command's processes and their workers), and the ratios the goals are stated in:
  idle:      now's wall ≤ 60% of before's;
  neighbour: now's wall ≤ 3× its own idle wall, and its CPU time ≤ 1.3× its own idle CPU time.

Run: python benchmarks/contention.py [--replicates 1] [--steps STEPS]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time

from common import BusyNeighbour

from losspath.runtime import usable_cores


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process it waited for) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def study(extra: list[str], args) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "losspath", "reproduce", "frankle2020", "-q", "--replicates",
                   str(args.replicates), "--root", f"{tmp}/runs", "--out", f"{tmp}/out", *extra]
        if args.steps:
            command += ["--steps", args.steps]
        return timed(command)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=1, help="Replicates per default setting (the slice).")
    ap.add_argument("--steps", default=None, help="Override the training length (default: the settings' own).")
    args = ap.parse_args()
    cores = usable_cores()
    runtimes = {"before": ["--jobs", "1", "--threads", str(cores)], "now": []}
    print(f"losspath reproduce frankle2020 --replicates {args.replicates}"
          f"{' --steps ' + args.steps if args.steps else ''}; {cores} usable cores")
    results = {}
    for where in ("idle", "neighbour"):
        for name, extra in runtimes.items():
            if where == "idle":
                results[name, where] = study(extra, args)
            else:
                with BusyNeighbour():
                    results[name, where] = study(extra, args)
            wall, cpu = results[name, where]
            print(f"  {name:6s} {where:9s} wall {wall:7.1f} s   CPU {cpu:7.1f} s   ({' '.join(extra) or 'defaults'})")
    b_idle, n_idle, b_busy, n_busy = (results[k] for k in [("before", "idle"), ("now", "idle"),
                                                           ("before", "neighbour"), ("now", "neighbour")])
    print(f"idle:      now / before wall {n_idle[0] / b_idle[0]:.2f} (goal ≤ 0.60), CPU {n_idle[1] / b_idle[1]:.2f}")
    print(f"neighbour: now wall {n_busy[0] / n_idle[0]:.2f}× its idle wall (goal ≤ 3), CPU {n_busy[1] / n_idle[1]:.2f}× "
          f"its idle CPU (goal ≤ 1.3)")
    print(f"           before wall {b_busy[0] / b_idle[0]:.2f}× its idle wall, CPU {b_busy[1] / b_idle[1]:.2f}× its idle "
          f"CPU; now / before next to the neighbour: wall {n_busy[0] / b_busy[0]:.2f}")


if __name__ == "__main__":
    main()
