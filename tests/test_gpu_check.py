"""benchmarks/gpu_check.sh in its CPU smoke form (seconds): the GPU check itself must keep working where no GPU is."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_in_its_cpu_smoke_form(tmp_path):
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-smoke"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    log = (tmp_path / "gpu_check.log").read_text()
    assert "2 passed" in log and "tests exit status 0, figures exit status 0" in log
    record = json.loads((tmp_path / "gpu_figures.json").read_text())
    assert record["smoke"] and record["training_it_per_s"]["fp32 (exact, default)"] > 0
    assert record["training_it_per_s"]["tf32"] == "skipped: CUDA only"
    for batchnorm in ("interpolate", "recompute"):  # the engine agrees with the plain per-α loop it is timed against
        assert record["line"][batchnorm]["max_relative_difference"] < 1e-5
    assert 0 < record["line"]["bf16"]["max_relative_difference"] < 5e-3
    # the Frankle schedule of a 160-epoch CIFAR run: 0, 2^k ≤ 1024, every 1000 iterations, the last (62,560): 74
    # checkpoints, so 3 × 73 lines
    assert record["projection"]["lines"] == 219 and record["projection"]["iterations"] == 3 * 62_560
    assert (tmp_path / "test_gpu.xml").is_file()


def test_gpu_check_refuses_a_gpu_run_without_a_gpu_in_one_sentence(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--cpu-smoke" in proc.stderr
