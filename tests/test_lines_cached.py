"""Lines cached in the run store (run_lines.py), including lines that end in another run."""
import numpy as np

from losspath.data import load_dataset
from losspath.hparams import Hparams
from losspath.lines import evaluate_line
from losspath.run_lines import run_line
from losspath.training import model_for, train


def test_cross_run_lines_are_cached_with_the_start_run(tmp_path):
    data = load_dataset("digits")
    runs = [train(Hparams(dataset="digits", model="mlp_16", steps="10it", seed=s), root=tmp_path, progress=False)
            for s in (0, 1)]
    model = model_for(runs[0].hparams, data)
    cross = run_line(runs[0], model, data, 0, "last", end_run=runs[1], split="test", points=5)
    direct = evaluate_line(model, runs[0].state_path(0), runs[1].state_path("last"), data.test, points=5,
                           progress=False)
    np.testing.assert_array_equal(cross.loss, direct.loss)
    files = list((runs[0].dir / "lines").glob("*.safetensors"))
    assert len(files) == 1 and runs[1].dir.name in files[0].name
    assert not (runs[1].dir / "lines").exists()

    # the same steps within the start run are another line, in another file
    own = run_line(runs[0], model, data, 0, "last", split="test", points=5)
    assert len(list((runs[0].dir / "lines").glob("*.safetensors"))) == 2
    assert not np.array_equal(own.loss, cross.loss)

    # a rerun reads the file back: the same numbers, the file untouched
    written = files[0].stat().st_mtime_ns
    again = run_line(runs[0], model, data, 0, "last", end_run=runs[1], split="test", points=5)
    np.testing.assert_array_equal(again.loss, cross.loss)
    np.testing.assert_array_equal(again.class_counts, cross.class_counts)
    assert files[0].stat().st_mtime_ns == written
