"""Training to convergence (Hparams.stop_at_train_error): where it stops, how it hashes, how it resumes."""
import signal

import pytest

from losspath.checkpoints import load_state
from losspath.hparams import Hparams
from losspath.store import Run
from losspath.training import evaluate, model_for, train
from helpers import train_killed_after
from test_training import states_equal

# blobs: 200 examples, batch 32 → 7 iterations per epoch; a cap of 60 epochs is 420 iterations
HP = Hparams(dataset="blobs", model="mlp_16", steps="60ep", batch_size=32, lr=0.05, momentum=0.9,
             checkpoints="epochs", stop_at_train_error=0.03)


def train_error_at(run, step, data):
    model = model_for(run.hparams, data)
    model.load_state_dict(load_state(run.checkpoint(step)))
    return evaluate(model, data.train)[1]


def test_stops_at_the_first_epoch_end_below_the_target(tmp_path, tiny_dataset):
    run = train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)
    done, info = run.done(), run.info()
    last = done["last_step"]
    assert done["converged"] is True and 0 < last < 420 and last % 7 == 0
    assert info["last_step"] == last and info["cap_step"] == 420 and info["schedule"][-1] == last
    assert run.resolve_step("last") == last and run.saved_steps()[-1] == last
    # the error at the stop is at most the target, and it was not one epoch earlier
    assert train_error_at(run, last, tiny_dataset) == done["train_error"] <= 0.03
    assert train_error_at(run, last - 7, tiny_dataset) > 0.03
    assert "≤ 0.03" in done["stop_reason"]


def test_a_net_that_hits_the_cap_is_reported_not_converged(tmp_path, tiny_dataset):
    capped = HP.replace(steps="1ep", stop_at_train_error=0.001, lr=0.001)
    run = train(capped, root=tmp_path, dataset=tiny_dataset, progress=False)
    done = run.done()
    assert done["converged"] is False and done["last_step"] == 7 and done["train_error"] > 0.001
    assert "cap of 7 iterations" in done["stop_reason"]


def test_the_target_is_part_of_the_run_hash():
    assert Hparams().run_id() == Hparams(stop_at_train_error=0.0).run_id()  # off: old runs keep their names
    assert HP.run_id() != HP.replace(stop_at_train_error=0.0).run_id() != HP.replace(stop_at_train_error=0.02).run_id()
    with pytest.raises(Exception, match="stop-at-train-error"):
        Hparams(stop_at_train_error=1.0).validate()


@pytest.mark.parametrize("kill_after", [3, 6])
def test_resume_after_kill_stops_at_the_same_step_bit_identically(tmp_path, tiny_dataset, kill_after):
    ref = train(HP, root=tmp_path / "ref", dataset=tiny_dataset, progress=False)
    root = tmp_path / "killed"
    proc = train_killed_after(HP, root, kill_after)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not Run.for_hparams(HP, root).is_complete
    resumed = train(HP, root=root, dataset=tiny_dataset, progress=False)
    assert resumed.done()["last_step"] == ref.done()["last_step"]
    assert resumed.saved_steps() == ref.saved_steps()
    for t in ref.saved_steps():
        assert states_equal(load_state(ref.checkpoint(t)), load_state(resumed.checkpoint(t))), t


def test_train_command_says_where_it_stopped(tmp_path, capsys):
    from helpers import run_cli

    code, out, err = run_cli(["train", "--data", "digits", "--model", "mlp_16", "--steps", "30ep", "--lr", "0.05",
                              "--stop-at-train-error", "0.2", "--root", str(tmp_path), "-q"], capsys)
    assert code == 0, err
    run = Run.open(out.strip())
    assert run.hparams.stop_at_train_error == 0.2 and run.done()["converged"] is True
    assert f"converged at iteration {run.done()['last_step']}" in err
