"""The runtime options reach every study: the runs a study trains record the thread count it was given."""
import json

import pytest

from helpers import run_cli

TINY = {
    "frankle2020": ["--setting", "digits-mlp", "-r", "1", "--steps", "4it", "--points", "3"],
    "mli-plateau": ["--depth", "1", "--init-scale", "0.5", "-r", "1", "--steps", "1ep", "--points", "3"],
    "mli-toy": ["--depth", "1", "--init-scale", "0.3", "--steps", "20it", "--points", "3"],
    "basins": ["--data", "digits", "--part", "2", "--stages", "1", "--runs", "2", "--epochs", "1", "--model",
               "convnet6_8", "--points", "3"],
}


def made_with(root):
    return [json.loads((d / "DONE").read_text())["made_with"] for d in sorted(root.iterdir()) if (d / "DONE").is_file()]


@pytest.mark.parametrize("study", list(TINY))
def test_every_study_trains_its_runs_with_the_threads_it_is_given(study, tmp_path, capsys):
    for threads in (2, 1):  # 2 first: a study that ignores the option trains with the default, 1
        root = tmp_path / f"runs{threads}"
        code, _, err = run_cli(["reproduce", study, *TINY[study], "--threads", str(threads), "--jobs", "1", "-q",
                                "--root", str(root), "--out", str(tmp_path / f"out{threads}")], capsys)
        assert code == 0, err
        made = made_with(root)
        assert made and {m["threads"] for m in made} == {threads}, (study, made)


def test_jobs_and_threads_are_checked_before_any_work(tmp_path, capsys):
    for option, value, message in [("--jobs", "0", "--jobs must be at least 1, not 0."),
                                   ("--threads", "0", "--threads must be at least 1, not 0."),
                                   ("--workers", "2", "--scheduler and --workers only apply to --executor dask.")]:
        code, _, err = run_cli(["reproduce", "mli-toy", option, value, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and err.strip() == f"error: {message}", err
        assert not (tmp_path / "o").exists()


def test_a_script_without_a_main_guard_gets_one_sentence_on_what_to_do(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "study.py"
    script.write_text("from losspath.runtime import Runtime\nfrom losspath.studies.mli.toy import run_study\n"
                      f"run_study(depths=[1, 2], init_scales=[0.3], points=3, train_overrides=dict(steps='2it'), "
                      f"out={str(tmp_path / 'out')!r}, runtime=Runtime(root={str(tmp_path / 'runs')!r}, jobs=2, "
                      "progress=False))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("losspath.errors.LosspathError: A worker process died or could not start.")
    assert 'if __name__ == "__main__":' in last and "--jobs 1" in last
