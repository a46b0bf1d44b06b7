"""Executors: the local one (worker processes side by side) and Dask (loopback only) give the numbers of jobs run
one after another in this process, for every study, also after a Dask worker dies mid-study."""
import os
import signal
import threading
import time

import pandas as pd
import pytest

from losspath.errors import LosspathError
from losspath.executors import LocalExecutor, make_executor
from losspath.runtime import Runtime, usable_cores
from losspath.studies.basins import run_study as basins_study
from losspath.studies.basins.config import Config as BasinsConfig
from losspath.studies.frankle2020 import run_study
from losspath.studies.mli import plateau as mli_plateau, toy as mli_toy

distributed = pytest.importorskip("distributed")

STUDY = dict(settings=["digits-mlp"], replicates=2, points=5, steps="30it")
# Each study, tiny: its run_study and its arguments.
STUDIES = {
    "frankle2020": (run_study, dict(STUDY)),
    "mli-plateau": (mli_plateau.run_study, dict(data=["digits"], depths=[1], init_scales=[0.5], replicates=1, points=5,
                                                train_overrides=dict(steps="2ep", stop_at_train_error=0.2))),
    "mli-toy": (mli_toy.run_study, dict(depths=[1, 2], init_scales=[0.3], points=5, train_overrides=dict(steps="40it"))),
    "basins": (basins_study, dict(data=["digits"], parts=[2, 6], config=BasinsConfig(
        model="convnet6_8", stages=1, runs=2, epochs=1, gd_epochs=3, branch_at=(1,), flat_epochs=1, repeats=2,
        points=3))),
}
VARYING = ["run", "train_seconds"]  # a run's directory (under each test's own store) and its wall time


def read(out):
    return {name: pd.read_csv(out / f"{name}.csv") for name in ("curves", "summary")}


def read_all(out):
    """Every table a study wrote, without the columns that name places or times."""
    return {p.name: pd.read_csv(p).drop(columns=VARYING, errors="ignore") for p in sorted(out.glob("*.csv"))}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


def run(study: str, base, **runtime):
    fn, kwargs = STUDIES[study]
    fn(**kwargs, out=base / "out", runtime=Runtime(root=base / "runs", progress=False, **runtime))
    return read_all(base / "out")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    run_study(**STUDY, out=base / "out", runtime=Runtime(root=base / "runs", progress=False, jobs=1))
    return read(base / "out")


@pytest.mark.parametrize("study", list(STUDIES))
def test_every_study_gives_the_same_tables_in_process_in_workers_and_on_dask(study, tmp_path, cluster):
    here = run(study, tmp_path / "here", jobs=1)
    assert all(len(t) for t in here.values())
    assert_same(run(study, tmp_path / "workers", jobs=2), here)
    assert_same(run(study, tmp_path / "dask", executor="dask", scheduler=cluster.scheduler_address), here)


def test_dask_survives_a_worker_killed_mid_study_and_a_dask_rerun_gives_the_same_results(tmp_path, local_reference):
    root, out = tmp_path / "runs", tmp_path / "out"
    outcome = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        def study():
            try:
                run_study(**STUDY, out=out, runtime=Runtime(root=root, executor="dask", progress=False,
                                                            scheduler=cluster.scheduler_address))
                outcome["ok"] = True
            except Exception as e:
                outcome["error"] = e

        thread = threading.Thread(target=study)
        thread.start()
        deadline = time.time() + 120
        busy = []
        while not busy and time.time() < deadline:  # a worker in the middle of a training job
            busy = [w for w, tasks in client.processing().items() if tasks]
            busy = busy if list(root.glob("*/step_*.safetensors")) else []
            time.sleep(0.02)
        assert busy, "no worker ever started a job"
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        killed_mid_study = thread.is_alive() and len(list(root.glob("*/DONE"))) < STUDY["replicates"]
        os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker; the scheduler reschedules its job
        thread.join(timeout=300)
    assert killed_mid_study and not thread.is_alive()
    assert outcome == {"ok": True}, outcome
    assert_same(read(out), local_reference)
    again = tmp_path / "again"  # a Dask rerun on the same store (its own cluster) finds every run and line
    run_study(**STUDY, out=again, runtime=Runtime(root=root, executor="dask", workers=2, progress=False))
    assert_same(read(again), local_reference)


def test_local_workers_run_jobs_after_what_they_need_and_raise_a_jobs_error():
    from losspath.hparams import Hparams

    ex = LocalExecutor(jobs=2, progress=False)
    try:
        first = ex.submit(pow, 2, 10)
        second = ex.submit(divmod, first, 7)  # waits for `first`, gets its value
        assert ex.gather([second, first]) == [(146, 2), 1024]
        bad = ex.submit(Hparams(dataset="digits", model="lenet_300_100", steps="2ep").replace, "lr")
        with pytest.raises(TypeError):
            ex.gather([bad])
    finally:
        ex.close()


def test_runtime_is_checked_and_local_jobs_respect_the_usable_cores():
    for runtime, message in [(Runtime(executor="slurm"), "Unknown executor"),
                             (Runtime(workers=2), "only apply to --executor dask"),
                             (Runtime(executor="dask", workers=0), "--workers must be at least 1"),
                             (Runtime(jobs=0), "--jobs must be at least 1"),
                             (Runtime(executor="dask", jobs=2), "--jobs applies to --executor local"),
                             (Runtime(threads=0), "--threads must be at least 1")]:
        with pytest.raises(LosspathError, match=message):
            make_executor(runtime)
    assert usable_cores() == len(os.sched_getaffinity(0)) or usable_cores() < len(os.sched_getaffinity(0))
    assert Runtime(jobs=3).local_jobs() == 3 and Runtime(jobs=3).local_jobs(n_tasks=2) == 2
    assert Runtime().local_jobs() == usable_cores() and Runtime(threads=2).local_jobs() == max(1, usable_cores() // 2)
