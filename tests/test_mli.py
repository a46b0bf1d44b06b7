"""The MLI-plateau study (Wang et al. 2023) and its toy model: tiny end-to-end runs, toy dynamics, helpers.

The two scheme identities of the issue live in tests/test_lines.py: the homogeneous scheme on a bias-free
ReLU net equals plain interpolation (test_homogeneous_equals_plain_interpolation_without_biases), and from the
all-zero state it gives α^L times the end network's logits (test_homogeneous_scales_logits_by_alpha_to_the_depth).
"""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import run_cli
from losspath.data.toy import make_toy_dataset
from losspath.errors import LosspathError
from losspath.models import build_model
from losspath.models.toy import end_to_end_weight
from losspath.runtime import Runtime
from losspath.studies.mli import plateau as mli_plateau, toy as mli_toy

SETTING_COLUMNS = ["dataset", "family", "model", "depth", "layers", "init_scale", "bias", "replicate"]


def check_unit_interval_or_nan(values):
    v = np.asarray(values, dtype=float)
    assert np.all(np.isnan(v) | ((v >= 0) & (v <= 1))), v


# ------------------------------------------------------------------------------------------- plateau study

TINY = dict(depths=[2], init_scales=[0.25, 1.0], replicates=2, points=11,
            train_overrides=dict(steps="60ep", stop_at_train_error=0.05))


@pytest.fixture(scope="module")
def tiny_plateau(tmp_path_factory):
    base = tmp_path_factory.mktemp("mli_plateau")
    kwargs = dict(TINY, out=base / "out", runtime=Runtime(root=base / "runs", progress=False))
    first = mli_plateau.run_study(["digits"], **kwargs)
    return base, kwargs, first


def test_plateau_study_tables(tiny_plateau):
    base, _, result = tiny_plateau
    curves, summary, biases, runs = (result[k] for k in ("curves", "summary", "biases", "runs"))
    for name in ("curves", "summary", "biases", "runs", "findings"):
        assert (base / "out" / f"{name}.{'txt' if name == 'findings' else 'csv'}").is_file()
    for fig in ("plateau_vs_dominance", "curves_by_scheme", "class_shares", "last_layer_biases"):
        assert (base / "out" / f"{fig}.png").is_file() and (base / "out" / f"{fig}.pdf").is_file()
    # 2 init scales × 2 seeds × {bias, bias-free}; bias-ful nets get 4 schemes, bias-free twins only `all`
    assert len(runs) == 8 and set(runs.status) == {"converged"} and (runs.train_error <= 0.05).all()
    assert len(summary) == 4 * 4 + 4 and len(curves) == len(summary) * 11
    assert set(summary[summary.bias].scheme) == {"all", "homogeneous", "homogeneous_output", "weights"}
    assert set(summary[~summary.bias].scheme) == {"all"}
    on_disk = pd.read_csv(base / "out" / "curves.csv")
    assert list(on_disk.columns) == SETTING_COLUMNS + ["scheme", "split", "alpha", "loss", "error", "dominant_class",
                                                        "dominant_share"]
    for _, line in on_disk.groupby(SETTING_COLUMNS + ["scheme"]):
        np.testing.assert_allclose(line.alpha, np.linspace(0, 1, 11))
    assert on_disk.split.eq("train").all()
    check_unit_interval_or_nan(on_disk.error)
    for col in ("loss_plateau_end", "error_plateau_end", "error_plateau_end_chance", "loss_plateau_end_logk",
                "common_class_share", "bias_argmax_share", "train_error", "test_error"):
        check_unit_interval_or_nan(summary[col])
    # every net carries its init-dominance ratios; the smaller init is deeper in the paper's regime
    assert (runs.ratio_logits > 0).all() and runs[runs.bias].ratio_bias.notna().all() and runs[~runs.bias].ratio_bias.isna().all()
    by_scale = runs[runs.bias].groupby("init_scale").ratio_logits.median()
    assert by_scale[0.25] < by_scale[1.0]
    # biases: one row per net × class; bias-free twins have none
    assert len(biases) == 8 * 10
    assert biases[~biases.bias].bias_value.isna().all() and biases[biases.bias].bias_value.notna().all()
    ful = summary[summary.bias & (summary.scheme == "all")]
    for row in ful.itertuples():
        b = biases[(biases.init_scale == row.init_scale) & (biases.replicate == row.replicate) & biases.bias]
        assert row.bias_argmax_class == int(b.bias_value.to_numpy().argmax())
    # every line ends at the trained net; all and the homogeneous schemes start at the init
    assert (summary.groupby(["init_scale", "bias", "replicate"]).end_error.nunique() == 1).all()
    from_init = summary[summary.scheme != "weights"]
    assert (from_init.groupby(["init_scale", "bias", "replicate"]).start_error.nunique() == 1).all()
    text = result["text"]
    assert "converged: 8 of 8" in text and "regime per cell" in text and "OPPOSITE" not in text


def test_verdicts_are_per_cell_and_per_regime(tiny_plateau):
    from losspath.metrics import regime_of
    from losspath.studies.mli.verdicts import cell_table

    _, _, result = tiny_plateau
    cells = cell_table(result["summary"])
    assert len(cells) == 2 and (cells.seeds == 2).all() and (cells.pairs == 2).all()
    for c in cells.itertuples():
        assert c.regime == regime_of(c.ratio)
        # the cell's numbers are the mean of its seeds' error plateau ends
        s = result["summary"]
        ful = s[s.bias & (s.scheme == "all") & (s.init_scale == c.init_scale)]
        assert c.biases == pytest.approx(ful.error_plateau_end_chance.mean())
    for c in cells.itertuples():
        label = {"inside": "inside the paper's regime", "between": "between the regimes",
                 "init-dominated": "outside the paper's regime"}[c.regime]
        assert label in result["text"]


def test_small_init_bias_free_net_keeps_its_labels_along_the_line(tmp_path):
    """Wang et al. 2023, introduction: with a small init, a bias-free (homogeneous) ReLU net predicts the same
    labels along the line as at its end. Tolerance: 1 hidden layer, init ×0.01, trained to 1% training error on
    digits: from α = 0.1 on at least 99% of the training examples keep the trained net's label."""
    from losspath.data import load_dataset
    from losspath.hparams import Hparams
    from losspath.training import logits_at, model_for, train

    d = load_dataset("digits")
    hp = Hparams(dataset="digits", model="mlp_32", init_scale=0.01, bias=False, lr=0.05, momentum=0.9,
                 steps="200ep", stop_at_train_error=0.01)
    run = train(hp, root=tmp_path, dataset=d, progress=False)
    assert run.done()["converged"]
    model, start, end = model_for(hp, d), run.load_checkpoint(0), run.load_checkpoint("last")
    final = logits_at(model, end, d.train).argmax(1)
    for a in (0.1, 0.2, 0.5, 0.8):
        state = {k: (1 - a) * start[k] + a * end[k] for k in start}
        assert (logits_at(model, state, d.train).argmax(1) == final).double().mean() >= 0.99, a


def test_last_layer_bias_helper():
    model = build_model("mlp_8_8", (1, 5), 3)
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    np.testing.assert_allclose(mli_plateau.last_layer_bias(model.state_dict(), 3), [0.1, -0.2, 0.3], rtol=1e-6)
    assert mli_plateau.last_layer_bias(build_model("mlp_8_8", (1, 5), 3, bias=False).state_dict(), 3) is None
    assert mli_plateau.convnet_for((1, 40)) == ("conv1d", 3) and mli_plateau.convnet_for((1, 8, 8)) == ("convnet6", 4)


def test_plateau_cli_rerun_reuses_runs_and_lines(tiny_plateau, capsys):
    """The same sweep through the command line: every run and line is reused, the tables come out the same."""
    base, kwargs, first = tiny_plateau
    before = sorted(str(p) for p in (base / "runs").rglob("*.safetensors"))
    args = ["reproduce", "mli-plateau", "--data", "digits", "--depth", "2", "--init-scale", "0.25", "--init-scale", "1",
            "-r", "2", "--points", "11", "--steps", "60ep", "--stop-at-train-error", "0.05",
            "--root", str(base / "runs"), "--quiet"]
    code, out, err = run_cli(args + ["--out", str(base / "cli")], capsys)
    assert code == 0, err
    assert "digits" in out and "wrote" in out
    assert sorted(str(p) for p in (base / "runs").rglob("*.safetensors")) == before
    for name in ("summary", "curves", "biases"):
        pd.testing.assert_frame_equal(pd.read_csv(base / "cli" / f"{name}.csv"),
                                      pd.read_csv(base / "out" / f"{name}.csv"))
    for bad, needle in ((["--split", "val"], "split"), (["--depth", "0"], "Depths"),
                        (["--init-scale", "-1"], "Init scales"), (["--data", "nope"], "Unknown data set"),
                        (["--hold", "middle"], "hold"), (["--threads", "0"], "--threads"),
                        (["--stop-at-train-error", "2"], "stop-at-train-error")):
        code, out, err = run_cli(args + ["--out", str(base / "bad")] + bad, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
        assert not (base / "bad").exists()


def test_study_commands_are_lazy(capsys):
    """`losspath --help` must not import the study modules (they pull in pandas and matplotlib)."""
    code = ("import sys, losspath.cli; "
            "print(any(m in sys.modules for m in ('losspath.studies.mli.plateau', 'losspath.studies.mli.toy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    code, out, _ = run_cli(["reproduce", "mli-toy", "--help"], capsys)
    assert code == 0 and "--init-scale" in out and "--activation" in out


@pytest.mark.slow
def test_plateau_study_with_convnets_on_mnist1d(tmp_path):
    result = mli_plateau.run_study(["mnist1d"], depths=[1], init_scales=[0.5, 1.0], conv_init_scales=[0.5, 1.0],
                                   points=11, replicates=1,
                                   train_overrides=dict(steps="1ep"), out=tmp_path / "out", runtime=Runtime(root=tmp_path / "runs", progress=False))
    s = result["summary"]
    assert set(s.family) == {"mlp", "conv"} and set(s[s.family == "conv"].model) == {"conv1d"}
    assert set(result["runs"].status) == {"not converged"}  # one epoch: every net at its cap, none dropped
    check_unit_interval_or_nan(s.error_plateau_end)


# ------------------------------------------------------------------------------------------------ toy model

def test_toy_model_is_homogeneous_with_output_bias_only():
    x = torch.randn(7, 6)
    for name in ("deeplinear_3_8", "deeprelu_3_8"):
        model = build_model(name, (6,), 4, seed=1)
        names = [n for n, _ in model.named_parameters()]
        assert names == ["layers.0.weight", "layers.1.weight", "fc.weight", "fc.bias"]
        with torch.no_grad():
            model.fc.bias.normal_()
            out = model(x)
            scaled = {k: (v * 2 if k.endswith("weight") else v) for k, v in model.state_dict().items()}
            out2 = torch.func.functional_call(model, scaled, (x,))
        b = model.fc.bias.detach()
        torch.testing.assert_close(out2 - b, 8 * (out - b), rtol=1e-5, atol=1e-5)  # 3-homogeneous in the weights
    linear = build_model("deeplinear_3_8", (6,), 4, seed=1)
    state = linear.state_dict()
    with torch.no_grad():
        direct = x.double() @ end_to_end_weight(state).T + state["fc.bias"].double()
        torch.testing.assert_close(linear(x).double(), direct, rtol=1e-5, atol=1e-5)
    assert [n for n, _ in build_model("deeplinear_1", (6,), 4).named_parameters()] == ["fc.weight", "fc.bias"]
    with pytest.raises(LosspathError):
        build_model("deeplinear_0", (6,), 4)


def test_toy_data_is_balanced_and_separable():
    data = make_toy_dataset([3.0, 1.0, 0.5], per_class=5, noise=0.7, dim=8)
    for split in (data.train, data.test):
        assert torch.bincount(split.targets).tolist() == [5, 5, 5]
        signal = split.inputs[:, :3]
        torch.testing.assert_close(signal, torch.diag(torch.tensor([3.0, 1.0, 0.5]))[split.targets])
        assert split.inputs[:, 3:].std() > 0.3
    assert data.input_shape == (8,) and data.num_classes == 3 and "s3-1-0.5" in data.name
    assert make_toy_dataset(num_classes=5).num_classes == 5
    for bad in (dict(strengths=[1.0]), dict(strengths=[1.0, -1.0]), dict(per_class=0), dict(dim=2)):
        with pytest.raises(LosspathError):
            make_toy_dataset(**{"strengths": [1.0, 2.0, 3.0], **bad})


@pytest.fixture(scope="module")
def toy_twice(tmp_path_factory):
    base = tmp_path_factory.mktemp("mli_toy")
    kwargs = dict(depths=[2], init_scales=[0.3], points=11, train_overrides=dict(steps="200it"))
    a = mli_toy.run_study(out=base / "a", **kwargs, runtime=Runtime(root=base / "runs_a", progress=False))
    b = mli_toy.run_study(out=base / "b", figures=False, **kwargs, runtime=Runtime(root=base / "runs_b", progress=False))
    return base, a, b


def test_toy_dynamics_are_deterministic(toy_twice):
    _, a, b = toy_twice
    for key in ("dynamics", "classes", "curves", "summary"):
        pd.testing.assert_frame_equal(a[key], b[key])
    assert len(a["dynamics"]) == 21 * 4  # checkpoints every 10 of 200 iterations × 4 classes


def test_toy_last_learned_class_has_the_largest_bias(toy_twice):
    _, a, _ = toy_twice
    s = a["summary"]
    two = s[(s.r == 2) & (s.scheme == "all")].iloc[0]
    assert two.status == "trained" and two.final_error == 0
    # the weakest class (strength 0.5, class 3) is learned last and ends with the largest output bias
    assert two.last_learned_class == 3 and two.largest_bias_class == 3 and two.last_learned_has_largest_bias
    c = a["classes"]
    c2 = c[c.r == 2].sort_values("cls")
    assert c2.learned_rank.tolist() == [1, 2, 3, 4]  # learned in order of signal strength
    assert c2.final_bias.is_monotonic_increasing
    d = a["dynamics"]
    final = d[(d.r == 2) & (d.step == 200)].sort_values("cls")
    np.testing.assert_allclose(final.bias_value, c2.final_bias)


def test_toy_outputs(toy_twice):
    base, a, _ = toy_twice
    for name in ("dynamics", "classes", "curves", "summary"):
        assert (base / "a" / f"{name}.csv").is_file()
    for fig in ("toy_dynamics", "toy_plateau", "toy_curves"):
        assert (base / "a" / f"{fig}.png").is_file()
    curves = pd.read_csv(base / "a" / "curves.csv")
    assert len(curves) == 3 * 11  # 3 schemes × 11 α
    check_unit_interval_or_nan(curves.error)
    for col in ("error_plateau_end", "loss_plateau_end", "error_plateau_end_chance", "loss_plateau_end_logk",
                "common_class_share"):
        check_unit_interval_or_nan(a["summary"][col])
    assert (a["summary"].ratio_bias > 0).all() and "init-dominance ratio" in a["text"]
    assert "last-learned class has the largest output bias" in a["text"]


def test_toy_cli_bad_input(tmp_path, capsys):
    code, _, err = run_cli(["reproduce", "mli-toy", "--depth", "0", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["reproduce", "mli-toy", "--activation", "tanh", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "activation" in err and not (tmp_path / "o").exists()
    code, _, err = run_cli(["reproduce", "mli-toy", "--threads", "0", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--threads must be at least 1" in err and not (tmp_path / "o").exists()


def test_verdicts_on_a_hand_made_sweep():
    """Two cells, three seeds each: a deep small-init cell where biases make a plateau (0.5 vs 0.02) and the
    homogeneous scheme removes it, and a shallow cell with no plateau either way (0.03 vs 0.03)."""
    from losspath.studies.mli.verdicts import cell_table, describe

    rows = []
    for depth, scale, ratio, plateaus in ((4, 0.1, 1e-5, dict(all=0.5, homogeneous=0.04, homogeneous_output=0.3,
                                                                free=0.02)),
                                          (2, 1.5, 2.0, dict(all=0.03, homogeneous=0.03, homogeneous_output=0.03,
                                                             free=0.03))):
        for seed in range(3):
            base = dict(dataset="digits", family="mlp", depth=depth, init_scale=scale, replicate=seed,
                        status="converged", ratio_logits=ratio, common_class_share=0.8, bias_argmax_share=0.6,
                        init_dominated_loss=False)
            for scheme in ("all", "homogeneous", "homogeneous_output"):
                rows.append(dict(base, bias=True, scheme=scheme, error_plateau_end_chance=plateaus[scheme]))
            rows.append(dict(base, bias=False, scheme="all", error_plateau_end_chance=plateaus["free"]))
    summary = pd.DataFrame(rows)
    runs = summary[summary.scheme == "all"].assign(train_error=0.0)
    cells = cell_table(summary).set_index("depth")
    assert cells.loc[4, "regime"] == "inside" and cells.loc[2, "regime"] == "init-dominated"
    assert (cells.loc[4, "biases"], cells.loc[4, "bias_free"], cells.loc[4, "biases_longer"]) == (0.5, 0.02, 3)
    text = describe(dict(runs=runs, summary=summary), training=dict(lr=0.05))
    assert "agrees 3/3; agrees 3/3; agrees 3/3" in text and "no plateau 0/3; no plateau 0/3; no plateau 0/3" in text
    assert "inside the paper's regime: biases lengthen the error plateau: agrees in 1 (4×0.1) of 1 cells" in text
    assert "outside the paper's regime (init-dominated)" in text and "says nothing about it" in text
