"""End-to-end runs of the Frankle 2020 study: embedded settings on real data, paper settings on tiny
files in the real on-disk formats (short schedules), and the invariants of its tables."""
import numpy as np
import pandas as pd
import pytest

from losspath.checkpoints import load_state
from losspath.data import load_dataset
from losspath.errors import LosspathError
from losspath.runtime import Runtime
from losspath.store import Run
from losspath.studies.frankle2020 import hparams_for, run_study
from losspath.training import evaluate, model_for
from test_data import write_cifar, write_imagenet, write_mnist

POINTS = 5


def check_tables(result, settings, replicates, tmp_out, data_root=None, split="test"):
    curves, summary, runs = result["curves"], result["summary"], result["runs"]
    assert list(curves.columns) == ["setting", "replicate", "start_step", "alpha", "split", "loss", "error",
                                    "undefined", "undefined_reason"]
    assert not curves.undefined.any() and (curves.undefined_reason == "").all()
    for col in ["max_loss_increase", "max_error_increase", "barrier", "lucas_delta", "plateau_end", "distance"]:
        assert col in summary.columns
    assert set(curves.setting) == set(settings) and len(runs) == len(settings) * replicates
    # the α grid of every line is exactly linspace(0, 1, POINTS)
    for _, line in curves.groupby(["setting", "replicate", "start_step"]):
        np.testing.assert_array_equal(line.alpha.to_numpy(), np.linspace(0, 1, POINTS))
    assert curves.error.between(0, 1).all() and (curves.split == split).all()
    assert (summary.max_loss_increase >= 0).all() and (summary.max_error_increase >= 0).all()
    assert len(summary) * POINTS == len(curves)
    # the CSVs on disk load with pandas and hold the same tables
    on_disk = pd.read_csv(tmp_out / "curves.csv", dtype={"undefined_reason": object}).fillna({"undefined_reason": ""})
    pd.testing.assert_frame_equal(on_disk, curves, check_dtype=False)
    for name in ("fig1_from_init", "fig2_from_t", "fig3_max_increase"):
        assert (tmp_out / f"{name}.png").stat().st_size > 1000 and (tmp_out / f"{name}.pdf").is_file()
    # endpoints equal a direct evaluation of the checkpoints
    for (name, r), per in curves.groupby(["setting", "replicate"]):
        run = Run.open(runs[(runs.setting == name) & (runs.replicate == r)].run.iloc[0])
        data = load_dataset(run.hparams.dataset, data_root)
        model = model_for(run.hparams, data)
        last = run.done()["last_step"]
        for t in sorted(per.start_step.unique())[:2]:
            line = per[per.start_step == t]
            for alpha, step in ((0.0, t), (1.0, last)):
                model.load_state_dict(load_state(run.checkpoint(step)))
                loss, error = evaluate(model, data.split(split))
                row = line[line.alpha == alpha].iloc[0]
                assert row.loss == pytest.approx(loss, rel=1e-5, abs=1e-6)
                assert row.error == pytest.approx(error, abs=1e-9)


def test_embedded_settings_end_to_end_and_reuse(tmp_path):
    settings = ["mnist5k-lenet_300_100", "mnist1d-mlp", "mnist1d-resnet", "digits-mlp", "digits-convnet"]
    out = tmp_path / "out"
    result = run_study(settings, replicates=2, points=POINTS, steps="20it", out=out, runtime=Runtime(progress=False))
    check_tables(result, settings, 2, out)
    # the start steps are the Frankle schedule below the last iteration
    assert sorted(result["summary"].start_step.unique()) == [0, 1, 2, 4, 8, 16]
    assert "mnist1d-resnet: final test error" in result["text"]
    # a rerun reuses runs and cached lines: nothing is rewritten
    lines = sorted((tmp_path / "runs").glob("*/lines/*.safetensors")) or sorted(
        p for p in (Run.for_hparams(hparams_for("digits-mlp", 0, "20it")).dir / "lines").glob("*"))
    mtimes = [p.stat().st_mtime_ns for p in lines]
    again = run_study(settings, replicates=2, points=POINTS, steps="20it", out=out, runtime=Runtime(progress=False))
    assert [p.stat().st_mtime_ns for p in lines] == mtimes
    pd.testing.assert_frame_equal(again["summary"], result["summary"])


def test_train_split_and_recompute(tmp_path):
    out = tmp_path / "out"
    result = run_study(["mnist1d-resnet"], replicates=1, points=POINTS, steps="10it", split="train",
                       batchnorm="recompute", out=out, runtime=Runtime(progress=False))
    curves = result["curves"]
    assert (curves.split == "train").all() and curves.error.between(0, 1).all()
    # with recomputed BatchNorm statistics the α = 1 point differs from the checkpoint's own statistics
    interpolated = run_study(["mnist1d-resnet"], replicates=1, points=POINTS, steps="10it", split="train",
                             out=tmp_path / "out2", runtime=Runtime(progress=False))["curves"]
    assert not np.allclose(curves.loss, interpolated.loss)


def test_default_settings_are_real_mnist_lenet_with_openlths_recipe_and_the_1d_resnet():
    from losspath.studies.frankle2020 import DEFAULT_SETTINGS

    assert DEFAULT_SETTINGS == ("mnist5k-lenet_300_100", "mnist1d-resnet")
    hp, paper = hparams_for("mnist5k-lenet_300_100", 1), hparams_for("mnist-lenet_300_100", 1)
    # OpenLTH's mnist_lenet_300_100 defaults: SGD lr 0.1, no momentum, batch 128, 40 epochs, torch's bias init
    assert (hp.dataset, hp.model, hp.lr, hp.momentum, hp.weight_decay, hp.batch_size, hp.steps, hp.bias_init,
            hp.seed) == ("mnist5k", "lenet_300_100", 0.1, 0.0, 0.0, 128, "40ep", "uniform", 1)
    assert hp.replace(dataset="mnist") == paper  # the paper's MNIST setting, on other digits


def test_paper_settings_on_tiny_real_format_files(tmp_path):
    data_root = tmp_path / "data"
    write_mnist(data_root, gz=True, n_train=40, n_test=10)
    write_cifar(data_root, 4, n=6)
    write_imagenet(data_root)
    settings = ["mnist-lenet_300_100", "cifar10-vgg_16", "cifar10-resnet_20", "imagenet-resnet_50"]
    # OpenLTH's hyperparameters are the paper settings' own
    hp = hparams_for("cifar10-resnet_20", 2)
    assert (hp.lr, hp.momentum, hp.weight_decay, hp.batch_size, hp.steps, hp.milestones, hp.seed) == \
        (0.1, 0.9, 1e-4, 128, "160ep", "80ep,120ep", 2)
    assert (hparams_for("imagenet-resnet_50", 0).warmup, hparams_for("imagenet-resnet_50", 0).lr) == ("5ep", 0.4)
    # ... and so is OpenLTH's bias init; the embedded settings keep zero biases unless told otherwise
    assert {hparams_for(name, 0).bias_init for name in settings} == {"uniform"}
    assert hparams_for("mnist1d-mlp", 0).bias_init == "zero"
    assert hparams_for("mnist1d-mlp", 0, bias_init="uniform").bias_init == "uniform"
    out = tmp_path / "out"
    result = run_study(settings, replicates=1, points=POINTS, steps="2it", out=out, runtime=Runtime(data_root=data_root, progress=False))
    check_tables(result, settings, 1, out, data_root=data_root)
    assert sorted(result["summary"].start_step.unique()) == [0, 1]


def test_undefined_points_are_flagged_in_the_tables_not_scored():
    """A BatchNorm line extrapolated past α = 1 where the interpolated running variance turns negative: the
    curves carry NaN loss and error with the flag and its reason, and the summary counts them."""
    import torch
    from torch import nn

    from losspath import evaluate_line
    from losspath.studies.frankle2020 import _tables

    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).eval()
    start, end = ({k: v.clone() for k, v in net.state_dict().items()} for _ in range(2))
    start["1.running_var"].fill_(2.0)
    end["1.running_var"].fill_(1.0)  # (1 − α)·2 + α·1 = 2 − α < 0 for α > 2
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g))
    line = evaluate_line(net, start, end, data, alphas=[0.0, 1.0, 1.5, 2.5, 3.0], progress=False)
    tables = _tables({}, {("toy", 0, 0): line}, "test")
    curves, summary = tables["curves"], tables["summary"]
    assert curves.undefined.tolist() == [False, False, False, True, True]
    assert curves.loss[3:].isna().all() and curves.error[3:].isna().all() and curves.loss[:3].notna().all()
    assert all("variance" in r for r in curves.undefined_reason[3:]) and (curves.undefined_reason[:3] == "").all()
    assert summary.undefined_points.tolist() == [2] and np.isfinite(summary.max_loss_increase[0])


def test_bad_study_arguments(tmp_path):
    with pytest.raises(LosspathError, match="Unknown setting"):
        run_study(["cifar100-resnet"], out=tmp_path)
    with pytest.raises(LosspathError, match="bias-init"):
        run_study(["digits-mlp"], out=tmp_path, bias_init="normal")
    with pytest.raises(LosspathError, match="--threads must be at least 1"):
        run_study(["digits-mlp"], out=tmp_path, runtime=Runtime(threads=0))
    with pytest.raises(LosspathError, match="Unknown split"):
        run_study(split="val", out=tmp_path)
    with pytest.raises(LosspathError, match="cannot download"):
        run_study(["cifar10-resnet_20"], steps="1it", out=tmp_path / "o", runtime=Runtime(data_root=tmp_path / "empty"))
    assert not (tmp_path / "o").exists()


def test_figures_leave_a_gap_where_any_replicate_is_undefined():
    from losspath.studies.frankle2020.figures import _mean_std

    frame = pd.DataFrame(dict(alpha=[0.0, 0.0, 0.5, 0.5, 1.0, 1.0], loss=[1.0, 3.0, np.nan, 2.0, 0.5, 0.5]))
    mean, std = _mean_std(frame.groupby("alpha"), "loss")
    assert mean.tolist()[0] == 2.0 and np.isnan(mean.tolist()[1]) and mean.tolist()[2] == 0.5
    assert std.tolist()[0] == 1.0 and np.isnan(std.tolist()[1]) and std.tolist()[2] == 0.0
