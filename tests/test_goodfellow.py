"""The Goodfellow 2015 study end to end on short runs of the default settings: its tables against direct
evaluations of the checkpoints and of the plane's states, the reuse of the Frankle runs, bad input."""
import numpy as np
import pytest

from losspath.checkpoints import load_state
from losspath.data import load_dataset
from losspath.errors import LosspathError
from losspath.planes import state_at, trajectory_plane
from losspath.runtime import Runtime
from losspath.store import Run
from losspath.studies.frankle2020 import hparams_for
from losspath.studies.goodfellow2015 import run_study
from losspath.training import evaluate, model_for

SETTINGS = ["mnist5k-lenet_300_100", "mnist1d-resnet"]


def test_goodfellow_study_end_to_end(tmp_path):
    out = tmp_path / "out"
    runtime = Runtime(root=tmp_path / "runs", progress=False, jobs=1)
    result = run_study(SETTINGS, points=4, line_points=5, steps="8it", out=out, runtime=runtime)
    plane, path, line, summary = result["plane"], result["path"], result["line"], result["summary"]
    assert len(plane) == 2 * 16 and len(line) == 2 * 5 and list(summary.setting) == SETTINGS
    assert list(plane.columns[:8]) == ["setting", "a", "b", "split", "loss", "error", "undefined",
                                       "undefined_reason"]
    # the runs are the Frankle study's (same Hparams, same directory); every saved step is on the path
    for name in SETTINGS:
        run = Run.open(summary[summary.setting == name].run.iloc[0])
        assert run.dir.name == hparams_for(name, 0, "8it").run_id()
        steps = run.saved_steps()
        assert path[path.setting == name].step.tolist() == steps
        data = load_dataset(run.hparams.dataset)
        model = model_for(run.hparams, data)
        # the line's ends are the checkpoints' own test loss (BatchNorm recomputed on the ResNet: only α = 0
        # of the LeNet is checked there, it has no BatchNorm)
        per = line[line.setting == name]
        if name.startswith("mnist5k"):
            for alpha, step in ((0.0, 0), (1.0, steps[-1])):
                model.load_state_dict(load_state(run.checkpoint(step)))
                loss, error = evaluate(model, data.test)
                assert per[per.alpha == alpha].loss.iloc[0] == pytest.approx(loss, rel=1e-5)
            # a grid point of the plane equals a plain evaluation of origin + a·u + b·v
            states = [run.load_checkpoint(s) for s in steps]
            tplane = trajectory_plane(states)
            row = plane[plane.setting == name].iloc[5]
            model.load_state_dict(state_at(tplane, row.a, row.b))
            assert row.loss == pytest.approx(evaluate(model, data.test)[0], rel=1e-5)
            assert summary[summary.setting == name].batchnorm.iloc[0] == "none (no BatchNorm)"
    assert summary.plane_share.between(0, 1).all() and (summary.undefined_points == 0).all()
    for name in ("plane_mnist5k-lenet_300_100", "plane_mnist1d-resnet", "line"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.pdf").is_file()
    assert "the plane holds" in result["text"] and (out / "findings.txt").is_file()
    # a second run reuses the runs and gives the same numbers
    again = run_study(SETTINGS, points=4, line_points=5, steps="8it", out=tmp_path / "again", runtime=runtime)
    np.testing.assert_array_equal(again["plane"].loss.to_numpy(), plane.loss.to_numpy())


def test_goodfellow_bad_input(tmp_path):
    runtime = Runtime(root=tmp_path / "runs", progress=False, jobs=1)
    with pytest.raises(LosspathError, match="--points"):
        run_study(SETTINGS, points=1, out=tmp_path / "o", runtime=runtime)
    with pytest.raises(LosspathError, match="BatchNorm mode"):
        run_study(SETTINGS, batchnorm="end", out=tmp_path / "o", runtime=runtime)
    with pytest.raises(LosspathError, match="Unknown setting"):
        run_study(["nope"], out=tmp_path / "o", runtime=runtime)


pytestmark = pytest.mark.usefixtures("one_torch_thread")
