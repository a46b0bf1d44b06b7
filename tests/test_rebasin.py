"""Git Re-Basin study and the `losspath align` command, at tiny size."""
import numpy as np
import pytest

from losspath.aligned_lines import aligned_line_job
from losspath.errors import LosspathError
from losspath.metrics import barrier, barrier_height
from losspath.runtime import Runtime
from losspath.studies.rebasin import run_study
from losspath.store import Run


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """The MLP setting at two widths with every method; the BatchNorm ResNet at one width with weight matching
    (line evaluation of conv nets is the slow part), both BatchNorm modes."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LOSSPATH_HOME", str(tmp_path_factory.mktemp("rebasin_runs")))
    out = tmp_path_factory.mktemp("rebasin_out")
    mlp = run_study(["mnist5k-mlp"], widths={"mnist5k-mlp": (4, 8)}, steps="4it", points=3, out=out / "mlp", runtime=Runtime(progress=False))
    resnet = run_study(["mnist1d-resnet"], widths={"mnist1d-resnet": (2,)}, methods=["weight"], steps="4it",
                       points=3, bn_batches=1, out=out / "resnet", runtime=Runtime(progress=False))
    yield mlp, resnet, out
    patch.undo()


def test_rebasin_study_runs_every_method_and_both_batchnorm_modes_at_tiny_size(tiny_study):
    mlp, resnet, out = tiny_study
    assert sorted(mlp["summary"].width.unique()) == [4, 8] and set(mlp["summary"].batchnorm) == {"interpolate"}
    assert set(mlp["summary"].method) == {"naive", "weight", "activation"}
    assert set(resnet["summary"].batchnorm) == {"interpolate", "recompute"}
    for result in (mlp, resnet):  # the summary's numbers are the metrics of the stored curves
        c = result["curves"]
        for _, row in result["summary"].iterrows():
            line = c[(c.width == row.width) & (c.method == row.method) & (c.batchnorm == row.batchnorm)]
            assert row.loss_barrier_height == barrier_height(line.loss.to_numpy())
            assert row.error_barrier == barrier(line.alpha.to_numpy(), line.error.to_numpy())
    for name in ("rebasin_lines.png", "rebasin_width.png", "report.html", "summary.csv"):
        assert (out / "mlp" / name).is_file()
    assert "weight matching lowers the loss barrier" in mlp["text"]
    assert "[BatchNorm recompute]" in resnet["text"]
    means = resnet["summary"].groupby("batchnorm").error_barrier_height.mean()
    assert (f"mean error barrier height {means['interpolate']:.3f} interpolated vs {means['recompute']:.3f} "
            "recomputed") in resnet["text"]


def test_aligned_lines_end_at_the_same_function_as_replicate_b(tiny_study):
    # permuting B changes its weights but not its outputs: every line ends at B's loss and error
    s = tiny_study[0]["summary"]
    for _, group in s.groupby(["width", "batchnorm"]):
        assert np.allclose(group.loss_b, group.loss_b.iloc[0], rtol=1e-6, atol=1e-9)
        assert (group.error_b == group.error_b.iloc[0]).all()
        assert (group.loss_a == group.loss_a.iloc[0]).all()


def test_a_weight_matched_line_is_cached_in_the_run_store(tiny_study):
    runs = tiny_study[0]["runs"]
    a, b = runs[(runs.setting == "mnist5k-mlp") & (runs.width == 8)].run.tolist()
    cached = list((Run.open(a).dir / "aligned_lines").glob("weight-*.safetensors"))
    permuted = list((Run.open(b).dir / "aligned").glob("weight-*.safetensors"))
    assert len(cached) == 1 and len(permuted) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = aligned_line_job(a, b, "weight", dict(split="test", points=3, batchnorm="interpolate"), Runtime())
    assert cached[0].stat().st_mtime_ns == stamp
    row = tiny_study[0]["summary"].query("setting == 'mnist5k-mlp' and width == 8 and method == 'weight'").iloc[0]
    assert barrier_height(again.loss) == row.loss_barrier_height


@pytest.mark.parametrize("method", ["weight", "activation"])
def test_align_command_writes_b_permuted(tiny_study, tmp_path, capsys, method):
    from helpers import run_cli

    from losspath.checkpoints import load_state

    runs = tiny_study[0]["runs"]
    a, b = runs[(runs.setting == "mnist5k-mlp") & (runs.width == 8)].run.tolist()
    out = tmp_path / "p.safetensors"
    code, stdout, _ = run_cli(["align", f"{a}@last", f"{b}@last", "--out", str(out), "--method", method,
                               "--threads", "1"], capsys)
    assert code == 0 and "permuted 3 groups" in stdout
    permuted, original = load_state(out), Run.open(b).load_checkpoint("last")
    assert sorted(permuted) == sorted(original)
    # the same multiset of incoming weight rows in the first layer, just reordered
    rows = lambda s: sorted(map(tuple, s["fc_layers.0.weight"].tolist()))  # noqa: E731
    assert rows(permuted) == rows(original)


@pytest.mark.parametrize("args,message", [
    (["--out", "x.pt"], "--out must name a .safetensors file"),
    (["--out", "x.safetensors", "--method", "magic"], "Unknown --method"),
    (["--out", "x.safetensors"], "is neither a checkpoint file nor a run reference"),
])
def test_align_command_bad_input_exits_2_with_one_sentence(tmp_path, capsys, args, message):
    from helpers import run_cli

    a = tmp_path / "a.safetensors"
    from losspath.checkpoints import save_state
    from losspath.models import build_model

    save_state(a, build_model("mlp_4", (1, 28, 28), 10).state_dict())
    second = str(tmp_path / "missing.safetensors") if "neither" in message else str(a)
    code, _, err = run_cli(["align", str(a), second, "--model", "mlp_4", "--data", "mnist5k",
                            *[str(tmp_path / v) if v.endswith(("pt", "safetensors")) else v for v in args]], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_bad_rebasin_arguments_are_one_sentence(tmp_path):
    with pytest.raises(LosspathError, match="Unknown setting"):
        run_study(["nope"], out=tmp_path)
    with pytest.raises(LosspathError, match="--method"):
        run_study(methods=["magic"], out=tmp_path)
    with pytest.raises(LosspathError, match="--bn-batches"):
        run_study(["mnist5k-mlp"], bn_batches=0, out=tmp_path)
    with pytest.raises(LosspathError, match="Widths must be positive"):
        run_study(["mnist5k-mlp"], widths={"mnist5k-mlp": (0,)}, out=tmp_path)
