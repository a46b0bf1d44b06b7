import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli


def test_train_prints_run_dir_and_runs_lists_it(tmp_path, capsys):
    code, out, err = run_cli(["train", "--data", "digits", "--model", "mlp_32", "--steps", "20it",
                              "--root", str(tmp_path), "--threads", "1", "--quiet"], capsys)
    assert code == 0
    run_dir = Path(out.strip())
    assert run_dir.parent == tmp_path and (run_dir / "DONE").is_file()
    assert (run_dir / "step_20.safetensors").is_file() and "test error" in err
    code, out, _ = run_cli(["runs", "--root", str(tmp_path)], capsys)
    from losspath.store import Run

    fields = out.split()
    assert code == 0 and fields[:6] == [run_dir.name, "complete", "7", "ckpts", "digits", "mlp_32"], out
    assert fields[6:9] == ["test", "error", f"{Run.open(run_dir).done()['test_error']:.4f}"] and "steps=20it" in out


@pytest.mark.parametrize("args,needle", [
    (["train", "--steps", "2xp"], "Step '2xp'"),
    (["train", "--model", "resnet_x", "--steps", "1ep"], "Unknown model name"),
    (["train", "--data", "nope"], "Unknown data set"),
    (["train", "--data", "mnist", "--steps", "1ep"], "cannot download"),
    (["train", "--steps", "0it"], "zero iterations"),
    (["train", "--device", "tpu0"], "not a torch device"),
    (["train", "--bogus"], "No such option"),
    (["train", "--seed", "x"], "--seed"),
    (["train", "--threads", "0"], "--threads must be at least 1"),
    (["train", "--bias-init", "normal"], "--bias-init must be zero or uniform"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    root = tmp_path / "runs"
    code, out, err = run_cli(args + ["--root", str(root), "--data-root", str(tmp_path / "data")]
                             if args[-1] != "--bogus" else args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err
    assert not root.exists() or not any(root.iterdir())


def test_installed_command_exit_code(tmp_path):
    """The real console entry point, in a fresh process."""
    proc = subprocess.run([sys.executable, "-m", "losspath", "train", "--steps", "nope", "--root", str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1


def test_line_command_matches_the_engine(tmp_path, capsys):
    import pandas as pd

    from losspath import build_model, evaluate_line, load_dataset

    code, out, _ = run_cli(["train", "--data", "digits", "--model", "mlp_16", "--steps", "10it",
                            "--root", str(tmp_path), "--quiet"], capsys)
    run_dir = out.strip()
    code, out, err = run_cli(["line", f"{run_dir}@0", f"{run_dir}@last", "--points", "7", "--out",
                              str(tmp_path / "line.csv"), "--plot", str(tmp_path / "line.png"), "--quiet"], capsys)
    assert code == 0 and "loss_max_increase" in out
    frame = pd.read_csv(tmp_path / "line.csv")
    data = load_dataset("digits")
    direct = evaluate_line(build_model("mlp_16", data.input_shape, 10), f"{run_dir}@0", f"{run_dir}@10it",
                           data.test, points=7, progress=False)
    assert list(frame.columns) == ["alpha", "loss", "error", "undefined", "undefined_reason"]
    assert frame.loss.to_numpy() == pytest.approx(direct.loss, rel=1e-9)
    assert (tmp_path / "line.png").is_file() and (tmp_path / "line.pdf").is_file()
    # checkpoint files need --model and --data; with them, the same numbers
    code, _, err = run_cli(["line", f"{run_dir}/step_0.safetensors", f"{run_dir}/step_10.safetensors"], capsys)
    assert code == 2 and "--model and --data" in err
    code, out, _ = run_cli(["line", f"{run_dir}/step_0.safetensors", f"{run_dir}/step_10.safetensors", "--model",
                            "mlp_16", "--data", "digits", "--points", "7", "--quiet", "--out", str(tmp_path / "f.csv")],
                           capsys)
    assert code == 0 and pd.read_csv(tmp_path / "f.csv").loss.to_numpy() == pytest.approx(direct.loss, rel=1e-9)
    # --threads sets torch's thread count for the command only
    import torch

    before = torch.get_num_threads()
    code, _, _ = run_cli(["line", f"{run_dir}@0", f"{run_dir}@last", "--points", "7", "--threads", "1", "--quiet",
                          "--out", str(tmp_path / "t.csv")], capsys)
    assert code == 0 and torch.get_num_threads() == before
    assert pd.read_csv(tmp_path / "t.csv").loss.to_numpy() == pytest.approx(direct.loss, rel=1e-6)
