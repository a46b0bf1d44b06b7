"""Issue 16: each defect pinned with real files, real subprocesses and real damage (see also test_faults.py)."""
import math
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import run_cli, train_killed_after
from losspath.checkpoints import load_state, save_state
from losspath.files import atomic_write_text
from losspath.errors import LosspathError
from losspath.hparams import Hparams
from losspath.store import Run
from losspath.training import train

HP = Hparams(dataset="digits", model="mlp_8", steps="20it", checkpoints="frankle")  # saves 0 1 2 4 8 16 20


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def data_offset(path: Path) -> int:
    """Where a safetensors file's tensor data starts (after the 8-byte length and the JSON header)."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def run(tmp_path):
    return train(HP, root=tmp_path / "runs", progress=False)


# --- 1: outputs are never written through something that is not a regular file -------------------------


def test_line_out_refuses_symlink_and_fifo_and_leaves_them(run, tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for out, kind in ((link, "symbolic link"), (fifo, "FIFO")):
        code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "--points", "3", "-q", "--out", str(out)],
                               capsys)
        assert code == 2 and kind in one_error_line(err) and str(out) in err
    assert link.is_symlink() and target.read_text() == "keep me\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_atomic_write_refuses_a_character_device(tmp_path):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    except (PermissionError, OSError):
        pytest.skip("cannot create a device node here")
    with pytest.raises(LosspathError, match="character device"):
        atomic_write_text(dev, "x")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


# --- 2: checksums -----------------------------------------------------------------------------------------


def test_bit_flip_in_checkpoint_data_is_one_sentence_naming_the_file(run, capsys):
    ckpt = run.checkpoint(20)
    flip_bit(ckpt, data_offset(ckpt) + 5, 3)
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "--points", "3", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and str(ckpt) in line and "damaged" in line and "rerun the command that trained" in line


def test_bit_flip_in_cached_line_is_recomputed_with_a_notice(run, capsys):
    from losspath.data import load_dataset
    from losspath.run_lines import run_line
    from losspath.training import model_for

    data = load_dataset("digits")
    first = run_line(run, model_for(HP, data), data, 0, points=5)
    (cached,) = (run.dir / "lines").glob("*.safetensors")
    flip_bit(cached, data_offset(cached) + 60, 6)  # inside the loss array
    capsys.readouterr()
    again = run_line(run, model_for(HP, data), data, 0, points=5)
    err = capsys.readouterr().err
    assert "notice: cached line" in err and str(cached) in err
    assert again.loss.tolist() == first.loss.tolist() and again.error.tolist() == first.error.tolist()
    assert run_line(run, model_for(HP, data), data, 0, points=5).loss.tolist() == first.loss.tolist()


def test_hparams_json_with_other_values_and_a_valid_checksum_is_refused_by_the_directory_hash(run):
    from losspath.files import DamagedFile, read_json, write_json  # noqa: F401
    f = run.dir / "hparams.json"
    d = read_json(f)
    d["momentum"] = 0.5
    write_json(f, d)  # a consistent file, but not this directory's hyperparameters
    with pytest.raises(DamagedFile, match="hash"):
        Run.open(run.dir)


def test_edited_hparams_json_digit_is_caught_by_its_checksum(run):
    from losspath.files import DamagedFile

    f = run.dir / "hparams.json"
    f.write_text(f.read_text().replace('"lr": 0.1', '"lr": 0.2'))
    with pytest.raises(DamagedFile, match="checksum"):
        Run.open(run.dir)


def test_json_missing_its_last_newline_is_damaged_although_its_content_is_intact(tmp_path):
    from losspath.files import DamagedFile, read_json, write_json

    write_json(tmp_path / "a.json", {"loss": 1.5})
    (tmp_path / "a.json").write_bytes((tmp_path / "a.json").read_bytes()[:-1])  # found by the slow fault campaign
    with pytest.raises(DamagedFile, match="bytes differ"):
        read_json(tmp_path / "a.json")


def test_checksummed_json_and_safetensors_round_trip_and_detect_a_flip(tmp_path):
    from losspath.files import read_json, write_json

    write_json(tmp_path / "a.json", {"x": 1.5})
    assert read_json(tmp_path / "a.json") == {"x": 1.5}
    save_state(tmp_path / "s.safetensors", {"w": torch.arange(6.0)})
    assert torch.equal(load_state(tmp_path / "s.safetensors")["w"], torch.arange(6.0))
    flip_bit(tmp_path / "s.safetensors", data_offset(tmp_path / "s.safetensors") + 9)
    with pytest.raises(LosspathError, match="damaged"):
        load_state(tmp_path / "s.safetensors")


def test_damaged_basins_evaluation_cache_is_recomputed_with_a_notice(run, capsys):
    from losspath.data import load_dataset
    from losspath.training import CheckpointEvaluator, model_for

    data = load_dataset("digits")
    first = CheckpointEvaluator(model_for(HP, data), data).checkpoint(run, 20, "test")
    (cached,) = (run.dir / "evals").glob("*.json")
    text = cached.read_text()
    i = text.index('"loss": ') + len('"loss": ')
    cached.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:])  # another digit: still valid JSON
    capsys.readouterr()
    again = CheckpointEvaluator(model_for(HP, data), data).checkpoint(run, 20, "test")
    assert "notice: cached evaluation" in capsys.readouterr().err and again == first


# --- 3: Ctrl-C --------------------------------------------------------------------------------------------


def _interrupt_after(args, ready, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "losspath", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": "src"})
    deadline = time.time() + 120
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_sigint_during_train_exits_130_with_one_sentence(tmp_path):
    root = tmp_path / "runs"
    code, out, err = _interrupt_after(["train", "--data", "digits", "--model", "mlp_8", "--steps", "3000ep",
                                       "--root", str(root), "--threads", "1", "-q"],
                                      lambda: any(root.glob("train_*/step_2.safetensors")), tmp_path)
    assert code == 130 and out == ""
    assert err.strip().splitlines()[-1] == "error: interrupted; rerun the same command to resume."
    assert "Traceback" not in err


def test_sigint_during_reproduce_exits_130_with_one_sentence(tmp_path):
    root = tmp_path / "runs"
    code, out, err = _interrupt_after(["reproduce", "mli-toy", "-d", "2", "--init-scale", "1", "--steps", "200000it",
                                       "--points", "3", "--root", str(root), "--out", str(tmp_path / "out"),
                                       "--threads", "1", "-q"],
                                      lambda: any(root.glob("train_*/step_0.safetensors")), tmp_path)
    assert code == 130 and "interrupted; rerun the same command to resume." in err.strip().splitlines()[-1]
    assert "Traceback" not in err


# --- 4: a damaged run repairs itself or names the file ----------------------------------------------------


def test_truncated_last_checkpoint_of_finished_run_is_retrained_identically(run, capsys):
    before = load_state(run.checkpoint(8))
    last = run.checkpoint(20)
    reference = last.read_bytes()
    last.write_bytes(reference[:len(reference) // 2])
    capsys.readouterr()
    again = train(HP, root=run.dir.parent, progress=False)
    err = capsys.readouterr().err
    assert "notice:" in err and str(last) in err and "retraining" in err
    assert again.is_complete and last.read_bytes() == reference
    assert states_equal(load_state(run.checkpoint(8)), before)


@pytest.mark.parametrize("name", ["run.json", "DONE"])
def test_garbled_run_json_or_done_is_reported_then_repaired_by_train(run, capsys, name):
    f = run.dir / name
    f.write_text(f.read_text()[:-9] + "}garbage")
    if name == "run.json":  # line needs it to resolve steps: one sentence naming it
        code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "--points", "3", "-q"], capsys)
        assert code == 2 and str(f) in one_error_line(err)
    code, listing, _ = run_cli(["runs", "--root", str(run.dir.parent)], capsys)
    assert code == 0 and listing.split()[:2] == [run.dir.name, "damaged"]
    code, out, err = run_cli(["train", "--data", "digits", "--model", "mlp_8", "--steps", "20it",
                              "--root", str(run.dir.parent), "-q"], capsys)
    assert code == 0 and out.strip() == str(run.dir) and "notice:" in err
    assert Run.open(run.dir).verify() is None


def killed_run(root: Path, kill_after: int) -> Run:
    """A partial run of HP: a real training process killed right after its `kill_after`-th state file."""
    proc = train_killed_after(HP, root, kill_after)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return Run.for_hparams(HP, root)


def reference_run(tmp_path) -> Run:
    return train(HP, root=tmp_path / "reference", progress=False)


def assert_same_run(a: Run, b: Run):
    assert a.saved_steps() == b.saved_steps()
    for t in a.saved_steps():
        assert a.checkpoint(t).read_bytes() == b.checkpoint(t).read_bytes(), t
    assert (a.dir / "metrics.csv").read_bytes() == (b.dir / "metrics.csv").read_bytes()


@pytest.mark.parametrize("damage", ["empty resume", "garbled resume", "garbled metrics", "flipped earlier checkpoint"])
def test_damaged_partial_run_restarts_with_a_notice_and_ends_identical(tmp_path, capsys, damage):
    ref = reference_run(tmp_path)
    partial = killed_run(tmp_path / "killed", kill_after=8)  # 8 writes: checkpoints 0..8 and resume points
    resume = partial.dir / "resume.safetensors"
    assert resume.is_file() and not partial.is_complete
    if damage == "empty resume":
        resume.write_bytes(b"")
    elif damage == "garbled resume":
        flip_bit(resume, data_offset(resume) + 17, 2)
    elif damage == "garbled metrics":
        f = partial.dir / "metrics.csv"
        f.write_text(f.read_text().replace(",test,", ",tes,", 1))
    else:
        flip_bit(partial.checkpoint(1), data_offset(partial.checkpoint(1)) + 3, 5)
    capsys.readouterr()
    done = train(HP, root=tmp_path / "killed", progress=False)
    err = capsys.readouterr().err
    assert "notice:" in err and "restarting run" in err and "Traceback" not in err
    assert_same_run(ref, done)
    assert done.verify() is None


# --- 5: file-system errors are one sentence before any work ----------------------------------------------


def test_out_under_a_regular_file_is_one_sentence_before_work(run, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "-q", "--out", str(tmp_path / "afile" / "l.csv")],
                           capsys)
    assert code == 2 and "which is a file" in one_error_line(err)
    assert not (run.dir / "lines").exists()


def test_plot_into_proc_which_takes_no_new_files_leaves_no_csv(run, tmp_path, capsys):
    out = tmp_path / "a.csv"
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "-q", "--out", str(out),
                            "--plot", "/proc/losspath-test.png"], capsys)
    assert code == 2 and "--plot" in one_error_line(err) and not out.exists()


def test_train_root_under_a_regular_file_is_one_sentence(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["train", "--data", "digits", "--model", "mlp_8", "--steps", "2it", "-q",
                            "--root", str(tmp_path / "afile" / "runs")], capsys)
    assert code == 2 and "--root" in one_error_line(err)


@pytest.mark.parametrize("study", [["frankle2020", "--setting", "digits-mlp"], ["mli-toy", "-d", "2"]])
def test_reproduce_out_an_existing_file_fails_before_training(tmp_path, capsys, study):
    (tmp_path / "results").write_text("x")
    code, _, err = run_cli(["reproduce", *study, "--steps", "5it", "--points", "3", "-q",
                            "--root", str(tmp_path / "runs"), "--out", str(tmp_path / "results")], capsys)
    assert code == 2 and "not a directory" in one_error_line(err)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_failed_write_is_an_oserror_and_a_losspath_error(tmp_path):
    from losspath.files import FileWriteError, atomic_write

    def write(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(FileWriteError, match="No space left") as e:
        atomic_write(tmp_path / "x.bin", write)
    assert isinstance(e.value, OSError) and isinstance(e.value, LosspathError)
    assert list(tmp_path.iterdir()) == []


# --- 6: losspath runs ---------------------------------------------------------------------------------------


def test_runs_lists_a_run_with_non_default_checkpoints(tmp_path, capsys):
    code, out, _ = run_cli(["train", "--data", "digits", "--model", "mlp_8", "--steps", "2ep", "--checkpoints",
                            "epochs", "--root", str(tmp_path), "-q"], capsys)
    assert code == 0
    code, listing, err = run_cli(["runs", "--root", str(tmp_path)], capsys)
    error = Run.open(out.strip()).done()["test_error"]
    assert code == 0 and err == ""
    assert listing.split()[:9] == [Path(out.strip()).name, "complete", "3", "ckpts", "digits", "mlp_8", "test",
                                   "error", f"{error:.4f}"]
    assert time.strftime("%Y-%m-%d") in listing and "checkpoints=epochs" in listing


# --- 7: messages that say what is wrong --------------------------------------------------------------------


def test_nan_in_the_data_is_named_not_the_learning_rate(tmp_path):
    from helpers import make_blobs

    data = make_blobs()
    data.train.inputs[3, 0, 2] = math.nan
    with pytest.raises(LosspathError, match="NaN") as e:
        train(Hparams(dataset="blobs", model="mlp_8", steps="2it"), root=tmp_path, dataset=data, progress=False)
    assert "learning rate" not in str(e.value)


def test_huge_init_scale_is_named_not_the_learning_rate(tmp_path, capsys):
    code, _, err = run_cli(["train", "--data", "digits", "--model", "mlp_8", "--steps", "2it", "--init-scale", "1e30",
                            "--root", str(tmp_path), "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "--init-scale" in line and "learning rate" not in line


def test_loss_inf_at_every_alpha_is_not_summarised_as_monotone():
    from losspath.metrics import summarize

    s = summarize([0.0, 0.5, 1.0], [math.inf] * 3, "loss")
    assert s["loss_monotone"] is False or s["loss_monotone"] == False  # noqa: E712
    assert math.isnan(s["loss_max_increase"])


def test_pickled_code_in_a_pt_file_is_refused_without_suggesting_weights_only_false(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    torch.save({"w": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(LosspathError) as e:
        load_state(tmp_path / "evil.pt")
    assert "holds code" in str(e.value) and "weights_only" not in str(e.value)
    assert not (tmp_path / "ran").exists()


def test_mismatched_endpoints_name_both_networks(run, tmp_path, capsys):
    other = train(HP.replace(model="mlp_16"), root=run.dir.parent, progress=False)
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{other.dir}@last", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "mlp_8" in line and "mlp_16" in line


# --- 8: plausibility limits --------------------------------------------------------------------------------


@pytest.mark.parametrize("args,needle", [
    (["train", "--steps", "10000000000000it"], "at most"),
    (["train", "--steps", "1000000it", "--checkpoints", "every:1it"], "at most"),
    (["train", "--model", "mlp_1000000000"], "too large"),
])
def test_implausible_training_sizes_are_one_sentence(tmp_path, capsys, args, needle):
    code, _, err = run_cli(args + ["--data", "digits", "--root", str(tmp_path), "-q"], capsys)
    assert code == 2 and needle in one_error_line(err)
    assert not any(tmp_path.iterdir())


def test_implausible_points_and_missing_cuda_are_one_sentence(run, capsys):
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "-q", "--points", str(2**40)], capsys)
    assert code == 2 and "--points must be at most" in one_error_line(err)
    if not torch.cuda.is_available():
        code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "-q", "--device", "cuda"], capsys)
        assert code == 2 and "no CUDA" in one_error_line(err)


# --- 9: temp files of dead writers --------------------------------------------------------------------------


def test_temp_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    script = f"""
import os, signal
from pathlib import Path
from losspath.files import atomic_write
def write(tmp):
    Path(tmp).write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
atomic_write(Path({str(tmp_path / 'x.bin')!r}), write)
"""
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": "src"})
    assert proc.returncode == -signal.SIGKILL
    stale = [p.name for p in tmp_path.iterdir()]
    assert len(stale) == 1 and stale[0].endswith(".tmp")
    atomic_write_text(tmp_path / "y.txt", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.txt"]


# --- 10: inputs that mean the same thing ---------------------------------------------------------------------


def test_spellings_of_one_run_share_its_directory(tmp_path, capsys):
    dirs = set()
    for data, steps in (("digits", "5it"), ("DIGITS", " 5it "), ("Digits", "5")):
        code, out, _ = run_cli(["train", "--data", data, "--model", "mlp_8", "--steps", steps, "--root", str(tmp_path),
                                "-q"], capsys)
        assert code == 0
        dirs.add(out.strip())
    assert len(dirs) == 1 and len(list(tmp_path.glob("train_*"))) == 1


def test_short_flag_r_means_replicates_in_every_study():
    import importlib

    import typer

    from losspath.studies import STUDIES

    studies = [importlib.import_module(f"losspath.studies.{module}") for module in STUDIES.values()]
    for study in studies:
        params = typer.main.get_command(study.app).params
        r = [p.name for p in params if "-r" in p.opts]
        assert r in ([], ["replicates"]), (study.__name__, r)


def test_unknown_scheme_lists_the_schemes(run, capsys):
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "-q", "--scheme", "weight"], capsys)
    line = one_error_line(err)
    assert code == 2 and "all, weights, biases, homogeneous" in line


def test_negative_points_in_a_study_names_points(tmp_path, capsys):
    code, _, err = run_cli(["reproduce", "frankle2020", "--points", "-3", "--root", str(tmp_path / "r"),
                            "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and one_error_line(err) == "error: --points must be at least 2, not -3."


# --- 11: progress without a terminal -------------------------------------------------------------------------


def test_jobs_print_one_progress_line_each_without_a_terminal(capsys):
    from losspath.executors import LocalExecutor

    ex = LocalExecutor()
    tasks = [ex.submit(pow, 2, k) for k in range(3)]
    assert ex.gather(tasks, "lines") == [1, 2, 4]
    err = capsys.readouterr().err.splitlines()
    assert [e.split(" (")[0] for e in err] == ["lines: 1/3 jobs done", "lines: 2/3 jobs done", "lines: 3/3 jobs done"]


# --- 5 (continued): a full disk and a read-only file system, on real tmpfs mounts where this machine allows them -


@pytest.fixture
def tmpfs(tmp_path):
    """A fresh 64 KiB tmpfs (needs root and mount rights; skipped where the machine does not allow it)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_full_disk_is_one_sentence_and_the_rerun_after_freeing_space_is_identical(tmpfs, tmp_path, capsys):
    args = ["train", "--data", "digits", "--model", "mlp_32", "--steps", "2ep", "--threads", "1", "-q"]
    code, _, err = run_cli(args + ["--root", str(tmpfs)], capsys)
    assert code == 2 and "No space left on device" in one_error_line(err)
    subprocess.run(["mount", "-o", "remount,size=4m", str(tmpfs)], check=True)
    code, out, err = run_cli(args + ["--root", str(tmpfs)], capsys)
    assert code == 0 and "Traceback" not in err
    code, ref, _ = run_cli(args + ["--root", str(tmp_path / "reference")], capsys)
    assert_same_run(Run.open(ref.strip()), Run.open(out.strip()))
    assert not list(tmpfs.rglob("*.tmp"))


def test_read_only_file_system_as_out_is_one_sentence_before_work(run, tmpfs, capsys):
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "-q", "--out", str(tmpfs / "l.csv")], capsys)
    assert code == 2 and "Read-only file system" in one_error_line(err)
    assert not (run.dir / "lines").exists()


def test_safetensors_error_while_writing_is_a_file_write_error(tmp_path):
    from safetensors import SafetensorError

    from losspath.files import FileWriteError, atomic_write

    def write(tmp):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    with pytest.raises(FileWriteError, match="No space left"):
        atomic_write(tmp_path / "x.safetensors", write)
    assert list(tmp_path.iterdir()) == []


def test_training_without_a_terminal_prints_progress_lines(tmp_path, capsys, monkeypatch):
    from losspath.training import loop

    monkeypatch.setattr(loop, "PROGRESS_SECONDS", 0.0)  # a line after every iteration instead of every minute
    run = train(HP, root=tmp_path, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"{run.dir.name}: iteration {t}/20" for t in range(1, 21)]
