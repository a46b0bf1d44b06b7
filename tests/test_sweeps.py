"""Studies on a Dask cluster (loopback only) give the local executor's results, also after a worker dies."""
import os
import signal
import threading
import time

import pandas as pd
import pytest

from losspath.errors import LosspathError
from losspath.studies.frankle2020 import run_study
from losspath.sweeps import make_executor

distributed = pytest.importorskip("distributed")

STUDY = dict(settings=["digits-mlp"], replicates=2, points=5, steps="30it", progress=False, threads=1)


def read(out):
    return {name: pd.read_csv(out / f"{name}.csv") for name in ("curves", "summary")}


def assert_same(a, b):
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=False, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    run_study(**STUDY, root=base / "runs", out=base / "out")
    return read(base / "out")


def test_local_cluster_gives_the_local_results(tmp_path, local_reference):
    run_study(**STUDY, root=tmp_path / "runs", out=tmp_path / "out", executor="dask", workers=2)
    assert_same(read(tmp_path / "out"), local_reference)


def test_killed_worker_then_rerun_completes_with_same_results(tmp_path, local_reference):
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    root, out = tmp_path / "runs", tmp_path / "out"
    outcome = {}

    def study():
        try:
            run_study(**STUDY, root=root, out=out, executor="dask", scheduler=cluster.scheduler_address)
            outcome["ok"] = True
        except Exception as e:  # a killed worker may fail the first attempt; the rerun must finish it
            outcome["error"] = e

    thread = threading.Thread(target=study)
    thread.start()
    deadline = time.time() + 120
    while not list(root.glob("*/step_*.safetensors")) and time.time() < deadline:
        time.sleep(0.05)
    pids = client.run(os.getpid)
    os.kill(next(iter(pids.values())), signal.SIGKILL)  # the nanny restarts it; its tasks are rescheduled
    thread.join(timeout=300)
    client.close()
    cluster.close()
    assert not thread.is_alive()
    run_study(**STUDY, root=root, out=out)  # the rerun reuses what survived and redoes the rest
    assert_same(read(out), local_reference)


def test_executor_arguments_are_checked():
    with pytest.raises(LosspathError, match="Unknown executor"):
        make_executor("slurm")
    with pytest.raises(LosspathError, match="only apply"):
        make_executor("local", workers=2)
    with pytest.raises(LosspathError, match="at least 1"):
        make_executor("dask", workers=0)
