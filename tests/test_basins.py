"""The basins study (Liao & Poggio, Theory II): who starts from what, MDS point counts and geometry, averages
evaluated on the whole training set, a tiny end-to-end run of every part, CLI errors.

The perturbation itself (std = c × layer std) and "a branch starts from the perturbed parent" are tested on
the library in test_training.py; here we test the study's own bookkeeping on top of it."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from losspath.checkpoints import load_state
from losspath.cli import main
from losspath.data import load_dataset
from losspath.errors import LosspathError
from losspath.mds import embed_distances, embed_states, flatten_states, layer_keys, pairwise_distances, stress1
from losspath.models import build_model
from losspath.runtime import Runtime
from losspath.store import Run
from losspath.studies.basins import run_study
from losspath.studies.basins.config import Config, branch_hparams, flat_hparams, gd_hparams, polynomial_hparams
from losspath.training import CheckpointEvaluator, model_for

TINY = Config(model="convnet6_8", stages=2, runs=2, epochs=2, poly_epochs=2, gd_epochs=6, branch_at=(0, 2),
              flat_epochs=3, repeats=2, points=3)


def test_branch_bookkeeping_who_starts_from_what():
    cfg = Config(stages=3, runs=4, epochs=2)
    hps = branch_hparams(cfg)
    assert sorted(hps) == [(s, k) for s in (1, 2, 3) for k in (1, 2, 3, 4)]
    for (s, k), hp in hps.items():
        # stage 1 from the seeded init; later stages from the last model P of run 1 of the previous stage
        assert hp.init_from == ("" if s == 1 else f"{hps[s - 1, 1].run_id()}@last")
        # runs 1..K/2 from P itself, runs K/2+1..K from P + N(0, (0.01·layer std)²)
        assert hp.perturb == (0.01 if k > 2 else 0.0)
        assert (hp.perturb_seed != 0) == (k > 2)
        assert (hp.seed, hp.lr, hp.batch_size, hp.momentum, hp.steps, hp.checkpoints, hp.augment) == \
            (0, 0.01, 100, 0.0, "2ep", "epochs", False)
        assert (hp.dataset, hp.model, hp.activation) == ("digits", "convnet6", "relu")
    # every run has its own data order and its own noise; all runs are distinct
    assert len({hp.data_seed for hp in hps.values()}) == 12
    assert len({hp.perturb_seed for hp in hps.values() if hp.perturb}) == 6
    assert len({hp.run_id() for hp in hps.values()}) == 12
    # another --seed draws other data orders and noise
    other = branch_hparams(Config(stages=3, runs=4, epochs=2, seed=1))
    assert not {hp.data_seed for hp in other.values()} & {hp.data_seed for hp in hps.values()}
    # odd K: run 1 carries the chain unperturbed, the rest of the first half too
    odd = branch_hparams(Config(stages=1, runs=3))
    assert [odd[1, k].perturb for k in (1, 2, 3)] == [0.0, 0.01, 0.01]


def test_gd_branches_and_flatness_repeats_bookkeeping():
    cfg = Config(gd_epochs=20, branch_at=(5, 0), flat_epochs=7, repeats=3)
    main_hp, branches = gd_hparams(cfg)
    assert main_hp.batch_size == 0 and main_hp.lr == cfg.gd_lr and main_hp.steps == "20ep" and not main_hp.init_from
    assert sorted(branches) == [0, 5]
    for b, hp in branches.items():
        # a branch starts at the main trajectory's epoch b and runs to the same last epoch
        assert hp.init_from == f"{main_hp.run_id()}@{b}ep" and hp.steps == f"{20 - b}ep"
        assert hp.perturb == 0.25 and hp.batch_size == 0
    assert branches[0].perturb_seed != branches[5].perturb_seed
    repeats = flat_hparams(cfg)
    assert sorted(repeats) == [1, 2, 3]
    for hp in repeats.values():
        assert hp.init_from == f"{main_hp.run_id()}@last" and hp.perturb == 0.1 and hp.steps == "7ep"
        assert hp.batch_size == 0
    assert len({hp.run_id() for hp in repeats.values()}) == 3
    poly = polynomial_hparams(Config(poly_degree=3, poly_interval=2.0))
    assert poly["poly"].replace(activation="relu", poly_degree=2, poly_interval=4.0) == poly["relu"]


def test_layer_keys_follow_the_weight_tensors():
    model = build_model("convnet6", (1, 8, 8), 10)
    assert layer_keys(model, 2) == ["conv2.weight"] and layer_keys(model, "1") == ["conv1.weight"]
    assert layer_keys(model, 5) == ["fc.weight"]
    assert layer_keys(model, "conv3.bias") == ["conv3.bias"]
    assert layer_keys(model, "all") == [n for n, _ in model.named_parameters()]
    for bad in (0, 6, "conv9.weight"):
        with pytest.raises(LosspathError):
            layer_keys(model, bad)


def test_mds_one_point_per_state_and_planar_distances_kept():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(60, 2, generator=g, dtype=torch.float64))[0]  # a plane in 60-D
    coords = torch.randn(25, 2, generator=g, dtype=torch.float64) * 3
    states = [{"w": (basis @ c + 100.0).reshape(6, 10), "b": torch.zeros(3)} for c in coords]
    x = flatten_states(states, ["w"])
    assert x.shape == (25, 60)
    d = pairwise_distances(x)
    np.testing.assert_allclose(d, torch.cdist(coords, coords).numpy(), atol=1e-9)
    xy = embed_states(states, ["w"])
    assert xy.shape == (25, 2)
    assert stress1(d, xy) < 1e-3  # points that lie in a plane are embedded with their distances
    assert embed_distances(np.zeros((1, 1))).shape == (1, 2)
    np.testing.assert_allclose(pairwise_distances(embed_distances(d[:2, :2])), d[:2, :2], atol=1e-12)


def _direct(model, state, split):
    """Loss and error of `state` over every example of `split` in one forward pass."""
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        logits = model(split.inputs)
    return F.cross_entropy(logits.double(), split.targets).item(), (logits.argmax(1) != split.targets).double().mean().item()


def test_tiny_end_to_end_every_part(tmp_path, monkeypatch):
    out, root = tmp_path / "out", tmp_path / "runs"
    result = run_study(["digits"], config=TINY, out=out, runtime=Runtime(root=root, progress=False, threads=1))
    S, K, E, T = TINY.stages, TINY.runs, TINY.epochs, TINY.gd_epochs
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.part) == {1, 2, 3, 4, 5, 6} and (summary.data == "digits").all()
    for part in ("1 polynomial net", "2 branching SGD", "3 MDS", "4 full-batch GD", "5 flatness", "6 lines"):
        assert part in result["text"]
    stems = {p.stem for p in result["figures"]}
    for stem in ("part1_polynomial", "part2_branches", "part3_mds", "part3_mds_stages", "part4_gd", "part4_gd_mds",
                 "part5_flatness", "part5_confusion", "part6_lines"):
        assert f"digits_{stem}" in stems and (out / f"digits_{stem}.pdf").is_file()
    assert (out / "study.json").is_file() and (out / "findings.txt").read_text().startswith("== digits ==")
    assert result["report"].is_file()

    # part 2 on disk: unperturbed children start exactly at P, perturbed ones near it
    branches = result["branches"]
    runs = {(r.stage, r.run): Run.open(root / r.run_dir) for r in branches.itertuples()}
    parent = runs[1, 1]
    p_state = load_state(parent.checkpoint(parent.done()["last_step"]))
    assert runs[2, 1].hparams.init_from == f"{parent.dir.name}@last"
    child = load_state(runs[2, 1].checkpoint(0))
    assert all(torch.equal(child[k], p_state[k]) for k in p_state)
    perturbed = load_state(runs[2, 2].checkpoint(0))
    assert not torch.equal(perturbed["conv2.weight"], p_state["conv2.weight"])
    assert list(branches.start) == ["init", "init + noise", "P", "P + noise"]

    # MDS: one point per collected model (every epoch of every run, epoch 0 included)
    mds = result["mds"]
    count = mds.groupby(["part", "panel"]).size()
    assert count[3, "all stages"] == S * K * (E + 1)
    assert count[3, "stage 1"] == count[3, "stage 2"] == K * (E + 1)
    assert count[3, f"stages {TINY.late_stage}-{S}"] == (S - TINY.late_stage + 1) * K * (E + 1)
    assert count[4, "GD main and branches"] == (T + 1) + sum(T - b + 1 for b in TINY.branch_at)
    assert count[5, "2 repeats"] == TINY.repeats * (TINY.flat_epochs + 1) and count[5, "repeat 1"] == TINY.flat_epochs + 1
    assert (mds.layer == "conv2.weight").all() and np.isfinite(mds[["x", "y"]].to_numpy()).all()

    # part 4: the average ½(main(b + j) + branch(j)) is evaluated on the whole training set
    data = load_dataset("digits")
    main_run, gd_branches = Run.open(root / gd_hparams(TINY)[0].run_id()), gd_hparams(TINY)[1]
    branch_run = Run.open(root / gd_branches[2].run_id())
    model = model_for(main_run.hparams, data)
    gd = result["gd"]
    for j in (0, 3):
        a, b = load_state(main_run.checkpoint(2 + j)), load_state(branch_run.checkpoint(j))
        average = {k: (a[k] + b[k]) / 2 for k in a}
        loss, error = _direct(model, average, data.train)
        row = gd[(gd.trajectory == "average") & (gd.branch_at == 2) & (gd.epoch == 2 + j)].iloc[0]
        assert row.train_error == pytest.approx(error, abs=1e-12) and row.train_loss == pytest.approx(loss, rel=1e-5)
        row = gd[(gd.trajectory == "main") & (gd.epoch == 2 + j)].iloc[0]
        assert row.train_error == pytest.approx(_direct(model, a, data.train)[1], abs=1e-12)
    assert len(gd[gd.trajectory == "main"]) == T + 1 and len(gd[(gd.trajectory == "average") & (gd.branch_at == 0)]) == T + 1

    # part 5: curves from the perturbed M_final on, confusion matrices count every test example once
    flat, confusion = result["flat"], result["confusion"]
    assert sorted(flat.epoch.unique()) == list(range(TINY.flat_epochs + 1))
    assert (confusion.groupby("model")["count"].sum() == len(data.test)).all()
    assert set(confusion.model) == {"M_final", "repeat 1", "repeat 2"}

    # part 6: parent → child and sibling lines; endpoints are the models themselves
    lines = result["line_summary"]
    expected = (S - 1) * K + S * K * (K - 1) // 2 + 2 * len(TINY.branch_at) + TINY.repeats + 1
    assert len(lines) == expected and len(result["lines"]) == expected * TINY.points
    sib = lines[(lines.family == "GD branches") & (lines.kind == "siblings") & (lines.stage == 2)].iloc[0]
    assert sib.error_b == pytest.approx(gd[(gd.trajectory == "branch") & (gd.branch_at == 2) & (gd.epoch == T)]
                                        .train_error.iloc[0], abs=1e-12)
    assert (lines.error_barrier >= 0).all()

    # a rerun of one part reuses every run (no new run directories) and gives the same embedding
    before = sorted(p.name for p in root.iterdir())
    again = run_study(["digits"], parts=[3], config=TINY, out=tmp_path / "again", runtime=Runtime(root=root, progress=False, threads=1))
    assert sorted(p.name for p in root.iterdir()) == before
    pd.testing.assert_frame_equal(again["mds"].drop(columns="data"),
                                  mds[mds.part == 3].drop(columns="data").reset_index(drop=True))

    # ... and every stored checkpoint's evaluation: part 2 evaluates nothing on a rerun, with the same numbers
    assert (parent.dir / "evals" / f"{parent.done()['last_step']}-digits-train.json").is_file()
    with monkeypatch.context() as m:
        m.setattr(CheckpointEvaluator, "state", lambda *a, **k: pytest.fail("evaluated again"))
        rerun = run_study(["digits"], parts=[2], config=TINY, out=tmp_path / "again2", runtime=Runtime(root=root, progress=False, threads=1))
    pd.testing.assert_frame_equal(rerun["branches"], branches)


@pytest.mark.parametrize("args, message", [
    (["--part", "7"], "Unknown part 7"),
    (["--runs", "1"], "--runs must be at least 2"),
    (["--branch-at", "0,200"], "--branch-at epochs must lie in"),
    (["--branch-at", "x"], "comma-separated"),
    (["--data", "nosuch"], "Unknown data set"),
    (["--data", "imagenet"], "No default network"),
    (["--data", "digits", "--part", "3", "--layer", "9"], "Layer 9 does not exist"),
    (["--data", "mnist1d", "--model", "convnet6"], "expects an input_shape"),
    (["--gd-lr", "nan"], "--gd-lr must be a positive finite number"),
    (["--flat-perturb", "-0.1"], "--flat-perturb must be a finite number"),
    (["--seed", "-1"], "--seed must be an integer"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_cli_user_errors_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "basins", "--root", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "-q", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing trained


def test_cli_runs_one_part(tmp_path, capsys):
    main(["reproduce", "basins", "--part", "1", "--data", "digits", "--model", "convnet6_8", "--poly-epochs", "1", "--poly-degree", "3",
          "--root", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "-q"])
    text = capsys.readouterr().out
    assert "1 polynomial net (degree 3" in text and "2 branching" not in text
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert set(summary.part) == {1}
    assert set(summary.item) == {"relu net", "poly net", "polynomial fit"}
