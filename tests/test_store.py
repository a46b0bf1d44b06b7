"""`Run` names every file and folder of a run directory; what training and the caches write is what it names."""
from pathlib import Path

from losspath.hparams import Hparams
from losspath.run_lines import run_line
from losspath.store import Run
from losspath.training import model_for, train

HP = Hparams(dataset="blobs", model="mlp_16", steps="2ep", batch_size=50, lr=0.05, checkpoints="frankle")


def test_run_paths_are_the_documented_names():
    run = Run(Path("/runs/train_x"), HP)
    assert run.hparams_file == Path("/runs/train_x/hparams.json")
    assert run.info_file == Path("/runs/train_x/run.json")
    assert run.metrics_file == Path("/runs/train_x/metrics.csv")
    assert run.resume_file == Path("/runs/train_x/resume.safetensors")
    assert run.done_file == Path("/runs/train_x/DONE")
    assert run.lock_file == Path("/runs/train_x/.lock")
    assert run.checkpoint(12) == Path("/runs/train_x/step_12.safetensors")
    d = Path("/runs/train_x")
    assert run.line_cache(0, "train_y.8", "test", "abc") == d / "lines" / "0-train_y.8-test-abc.safetensors"
    assert run.eval_cache(8, "blobs", "train") == d / "evals" / "8-blobs-train.json"
    assert run.aligned_state("weight", "train_y", 8, 9) == d / "aligned" / "weight-to-train_y-8-9.safetensors"
    assert run.aligned_line_cache("weight", "test", "abc") == d / "aligned_lines" / "weight-test-abc.safetensors"


def test_a_trained_run_holds_only_files_run_names(tmp_path, tiny_dataset):
    run = train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)
    run_line(run, model_for(HP, tiny_dataset), tiny_dataset, 0, "last", points=3, progress=False)
    named = {run.hparams_file, run.info_file, run.metrics_file, run.done_file, run.lock_file}
    named |= {run.checkpoint(t) for t in run.info()["schedule"]}
    files = {p for p in run.dir.rglob("*") if p.is_file()}
    (line,) = files - named
    assert line.parent == run.dir / "lines" and line.name.startswith("0-8-test-") and line.suffix == ".safetensors"
    assert run.saved_steps() == [0, 1, 2, 4, 8]
