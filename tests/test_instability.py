"""Frankle et al. 2020 (LMC): the error barrier height on hand-made curves, and the instability study."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from losspath.metrics import barrier, barrier_height
from losspath.runtime import Runtime


def test_barrier_height_is_the_maximum_minus_the_mean_of_the_endpoints():
    # ends 0.10 and 0.30 (mean 0.20), peak 0.50 at α = 0.5: height 0.30; the chord there is 0.20 too
    alphas, error = [0, 0.25, 0.5, 0.75, 1], [0.10, 0.30, 0.50, 0.35, 0.30]
    assert barrier_height(error) == pytest.approx(0.30)
    assert barrier(alphas, error) == pytest.approx(0.30)


def test_barrier_height_and_chord_barrier_differ_for_unequal_endpoints():
    # a bump right after a low start: chord at α = 0.25 is 0.15, so the chord barrier is 0.25; the height
    # is 0.40 − 0.20 = 0.20
    alphas, error = [0, 0.25, 0.5, 0.75, 1], [0.10, 0.40, 0.30, 0.30, 0.30]
    assert barrier_height(error) == pytest.approx(0.20)
    assert barrier(alphas, error) == pytest.approx(0.25)
    # a curve rising straight from 0.1 to 0.3 has no chord barrier but a height of half the rise
    assert barrier(alphas, [0.1, 0.15, 0.2, 0.25, 0.3]) == pytest.approx(0.0)
    assert barrier_height([0.1, 0.15, 0.2, 0.25, 0.3]) == pytest.approx(0.10)


def test_barrier_height_of_a_convex_line_is_zero():
    assert barrier_height([0.2, 0.1, 0.05, 0.1, 0.2]) == 0.0


def test_barrier_height_skips_undefined_points_and_is_nan_without_any():
    assert barrier_height([0.1, np.nan, 0.6, 0.1]) == pytest.approx(0.5)
    assert math.isnan(barrier_height([np.nan, np.nan]))


# --- spawning copies (losspath.siblings) --------------------------------------------------------------------

from losspath.errors import LosspathError  # noqa: E402
from losspath.hparams import Hparams  # noqa: E402
from losspath.siblings import child_hparams  # noqa: E402
from losspath.studies.instability import run_study, spawn_steps, stability  # noqa: E402
from losspath.training import lr_at  # noqa: E402


def test_a_copy_spawned_at_k_trains_the_rest_of_the_schedule_with_shifted_milestones():
    parent = Hparams(dataset="mnist1d", model="resnet1d_8_4", steps="16ep", milestones="8ep,12ep", lr=0.1)
    child = child_hparams(parent, 300, data_seed=7, per_epoch=32)
    assert (child.steps, child.milestones, child.data_seed, child.checkpoints) == ("212it", "0it,84it", 7, "0,last")
    assert child.init_from == f"{parent.run_id()}@300"
    assert [lr_at(t, child, 32) for t in range(212)] == [lr_at(t + 300, parent, 32) for t in range(212)]


def test_spawning_at_or_after_the_end_or_inside_a_warmup_is_refused():
    parent = Hparams(steps="100it", warmup="10it")
    with pytest.raises(LosspathError, match="must lie in"):
        child_hparams(parent, 100, 1, 10)
    with pytest.raises(LosspathError, match="inside the parent's warmup"):
        child_hparams(parent, 5, 1, 10)


def test_spawn_steps_are_zero_and_the_powers_below_the_end():
    assert spawn_steps(1280, 4) == [0, 1, 4, 16, 64, 256, 1024]
    assert spawn_steps(512, 2) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_stable_from_is_the_first_k_after_which_every_mean_height_is_below_the_threshold():
    rows = [dict(setting="s", split="test", k=k, replicate=r, error_barrier_height=h, error_barrier=h)
            for k, hs in [(0, (0.01, 0.01)), (1, (0.10, 0.06)), (4, (0.01, 0.02)), (16, (0.0, 0.01))]
            for r, h in enumerate(hs)]
    table = stability(pd.DataFrame(rows), threshold=0.02)
    # k = 0 is below 2% but k = 1 is not (mean 0.08); from k = 4 on (means 0.015, 0.005) all are below
    assert table.stable_from_here.tolist() == [False, False, True, True]
    assert table.height_mean.tolist() == pytest.approx([0.01, 0.08, 0.015, 0.005])


def test_instability_study_end_to_end_at_tiny_size(tmp_path):
    out = tmp_path / "out"
    result = run_study(["digits-mlp"], replicates=1, points=3, k_base=4, steps="6it", out=out, runtime=Runtime(progress=False))
    summary, runs = result["summary"], result["runs"]
    assert sorted(summary.k.unique()) == [0, 1, 4]
    assert set(summary.split) == {"test", "train"}
    assert (runs.role == "parent").sum() == 1 and (runs.role != "parent").sum() == 6
    # each copy starts from the parent's checkpoint at its k and runs the remaining iterations
    from losspath.store import Run
    parent = Run.open(runs[runs.role == "parent"].run.iloc[0])
    for _, row in runs[runs.role != "parent"].iterrows():
        copy = Run.open(row.run)
        assert copy.done()["last_step"] == 6 - row.k
        start, spawn = copy.load_checkpoint(0), parent.load_checkpoint(int(row.k))
        assert all(torch.equal(start[key], spawn[key]) for key in spawn)
    # the summary's numbers are the metrics of the stored curves
    curves = result["curves"]
    for _, row in summary.iterrows():
        c = curves[(curves.k == row.k) & (curves.split == row.split)]
        assert row.error_barrier_height == barrier_height(c.error.to_numpy())
        assert row.error_barrier == barrier(c.alpha.to_numpy(), c.error.to_numpy())
    assert (out / "instability_vs_k.png").is_file() and (out / "report.html").is_file()
    assert "error barrier height by k" in result["text"]
    again = run_study(["digits-mlp"], replicates=1, points=3, k_base=4, steps="6it", out=out, runtime=Runtime(progress=False))
    assert again["summary"].equals(summary)  # every run and line is reused from the store


def test_bad_instability_arguments_are_one_sentence(tmp_path):
    with pytest.raises(LosspathError, match="--k-base"):
        run_study(["mnist1d-resnet"], k_base=1, steps="4it", out=tmp_path)
    with pytest.raises(LosspathError, match="--split"):
        run_study(["mnist1d-resnet"], splits=["val"], steps="4it", out=tmp_path)
    with pytest.raises(LosspathError, match="Unknown setting"):
        run_study(["nope"], out=tmp_path)


def test_the_reproduce_command_exits_2_with_one_sentence_on_bad_input(tmp_path, capsys):
    from helpers import run_cli

    code, _, err = run_cli(["reproduce", "instability", "--k-base", "1", "--steps", "4it", "--out", str(tmp_path)],
                           capsys)
    assert code == 2 and err.strip() == "error: --k-base must be at least 2, not 1."


def test_describe_notes_a_split_whose_error_is_zero_along_every_line():
    from losspath.studies.instability import describe

    summary = pd.DataFrame([dict(setting="s", split=split, k=k, replicate=0, error_barrier_height=h, error_barrier=h)
                            for split, h in (("test", 0.05), ("train", 0.0)) for k in (0, 4)])
    curves = pd.DataFrame([dict(setting="s", split=split, k=k, replicate=0, alpha=a, error=e)
                           for split, e in (("test", 0.1), ("train", 0.0)) for k in (0, 4) for a in (0, 0.5, 1)])
    runs = pd.DataFrame([dict(setting="s", replicate=0, k=None, role="parent", test_error=0.1, last_step=8)])
    text = describe(dict(summary=summary, curves=curves, runs=runs, stability=stability(summary)))
    assert "note: the train error is 0 at every point of every line" in text
    assert "note: the test error" not in text
    assert "test: not stable at any k of the schedule" in text and "train: stable from k = 0" in text


@pytest.mark.slow
def test_instability_on_a_local_dask_cluster_gives_the_local_results(tmp_path):
    pytest.importorskip("distributed")
    study = dict(settings=["digits-mlp"], replicates=1, points=3, k_base=4, steps="6it", splits=["test"])
    local = run_study(**study, out=tmp_path / "local_out", runtime=Runtime(root=tmp_path / "local", progress=False))
    dask = run_study(**study, out=tmp_path / "dask_out",
                     runtime=Runtime(root=tmp_path / "dask", executor="dask", workers=2, progress=False))
    pd.testing.assert_frame_equal(dask["summary"], local["summary"], check_exact=False, rtol=1e-6, atol=1e-7)
