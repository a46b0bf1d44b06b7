import os
import subprocess
import sys
from pathlib import Path

import pytest

from losspath.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_train_prints_run_dir_and_runs_lists_it(tmp_path, capsys):
    code, out, err = run_cli(["train", "--data", "digits", "--model", "mlp_32", "--steps", "20it",
                              "--root", str(tmp_path), "--quiet"], capsys)
    assert code == 0
    run_dir = Path(out.strip())
    assert run_dir.parent == tmp_path and (run_dir / "DONE").is_file()
    assert (run_dir / "step_20.safetensors").is_file() and "test error" in err
    code, out, _ = run_cli(["runs", "--root", str(tmp_path)], capsys)
    assert code == 0 and run_dir.name in out and "complete" in out and "model=mlp_32" in out


@pytest.mark.parametrize("args,needle", [
    (["train", "--steps", "2xp"], "Step '2xp'"),
    (["train", "--model", "resnet_x", "--steps", "1ep"], "Unknown model name"),
    (["train", "--data", "nope"], "Unknown data set"),
    (["train", "--data", "mnist", "--steps", "1ep"], "cannot download"),
    (["train", "--steps", "0it"], "zero iterations"),
    (["train", "--device", "tpu0"], "not a torch device"),
    (["train", "--bogus"], "No such option"),
    (["train", "--seed", "x"], "--seed"),
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
