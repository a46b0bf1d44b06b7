import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from losspath.checkpoints import load_state
from losspath.errors import LosspathError
from losspath.hparams import Hparams
from losspath.steps import checkpoint_schedule
from losspath.store import Run, run_lock
from losspath.training import lr_at, model_for, train
from helpers import train_killed_after

HP = Hparams(dataset="blobs", model="mlp_16", steps="3ep", batch_size=32, lr=0.05, momentum=0.9,
             weight_decay=1e-3, milestones="2ep", checkpoints="frankle")


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_schedule_is_saved_and_run_reused(tmp_path, tiny_dataset):
    run = train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)
    info = run.info()
    assert info["iterations_per_epoch"] == 7 and info["last_step"] == 21
    assert run.saved_steps() == checkpoint_schedule("frankle", 21, 7) == [0, 1, 2, 4, 8, 16, 21]
    assert run.is_complete and not (run.dir / "resume.safetensors").exists()
    assert 0.0 <= run.done()["test_error"] <= 1.0
    mtime = run.checkpoint(21).stat().st_mtime_ns
    again = train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)
    assert again.dir == run.dir and run.checkpoint(21).stat().st_mtime_ns == mtime
    # step 0 is the initialization that model_for draws
    assert states_equal(load_state(run.checkpoint(0)), model_for(HP, tiny_dataset).state_dict())


def test_same_seed_bit_identical_and_seeds_separate(tmp_path, tiny_dataset):
    a = train(HP, root=tmp_path / "a", dataset=tiny_dataset, progress=False)
    b = train(HP, root=tmp_path / "b", dataset=tiny_dataset, progress=False)
    assert states_equal(load_state(a.checkpoint(21)), load_state(b.checkpoint(21)))
    c = train(HP.replace(data_seed=5), root=tmp_path, dataset=tiny_dataset, progress=False)
    # same init, different data order
    assert states_equal(load_state(a.checkpoint(0)), load_state(c.checkpoint(0)))
    assert not states_equal(load_state(a.checkpoint(21)), load_state(c.checkpoint(21)))


def test_hash_names_only_results_changing_fields():
    assert Hparams().run_id() == Hparams(lr=0.1).run_id()
    assert Hparams().run_id() != Hparams(lr=0.2).run_id()
    assert Hparams(seed=1).run_id() != Hparams(seed=2).run_id()


def test_lr_schedule_literals():
    hp = Hparams(lr=0.4, milestones="30ep,60ep", gamma=0.1, warmup="5ep")
    # OpenLTH: LambdaLR(min(1, it / warmup)) — the update at iteration t runs at lr·t/W, the first at 0
    assert lr_at(0, hp, 10) == 0.0
    assert lr_at(1, hp, 10) == pytest.approx(0.4 / 50)
    assert lr_at(49, hp, 10) == pytest.approx(0.4 * 49 / 50)
    assert lr_at(50, hp, 10) == pytest.approx(0.4)
    assert lr_at(299, hp, 10) == pytest.approx(0.4)
    assert lr_at(300, hp, 10) == pytest.approx(0.04)
    assert lr_at(600, hp, 10) == pytest.approx(0.004)


def test_full_batch_gradient_descent_step_matches_hand_computation(tmp_path, tiny_dataset):
    hp = Hparams(dataset="blobs", model="mlp", steps="1it", batch_size=0, lr=0.5, checkpoints="every:1it")
    run = train(hp, root=tmp_path, dataset=tiny_dataset, progress=False)
    w0 = load_state(run.checkpoint(0))
    model = model_for(hp, tiny_dataset)
    model.load_state_dict(w0)
    loss = F.cross_entropy(model(tiny_dataset.train.inputs), tiny_dataset.train.targets)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected = {k: v - 0.5 * g for (k, v), g in zip(model.named_parameters(), grads)}
    w1 = load_state(run.checkpoint(1))
    for k in expected:
        torch.testing.assert_close(w1[k], expected[k].detach(), rtol=0, atol=1e-6)


def test_warmup_lr_at_first_steps_is_openlths():
    # the literals: LambdaLR(min(1, it / 10)) on lr 0.4 gives 0, 0.04, 0.08, then 0.36 and 0.4
    hp = Hparams(lr=0.4, warmup="10it")
    assert [lr_at(t, hp, 100) for t in (0, 1, 2)] == pytest.approx([0.0, 0.04, 0.08], abs=1e-15)
    assert lr_at(9, hp, 100) == pytest.approx(0.36) and lr_at(10, hp, 100) == 0.4


def test_warmup_training_matches_sgd_with_openlths_lambda_schedule(tmp_path, tiny_dataset):
    # OpenLTH's loop: SGD(momentum, weight decay) stepped by LambdaLR(min(1, it / W)); full batch, so no data order
    hp = Hparams(dataset="blobs", model="mlp_16", steps="4it", batch_size=0, lr=0.5, momentum=0.9,
                 weight_decay=1e-3, warmup="3it", checkpoints="every:1it")
    run = train(hp, root=tmp_path, dataset=tiny_dataset, progress=False)
    model = model_for(hp, tiny_dataset)
    model.load_state_dict(load_state(run.checkpoint(0)))
    sgd = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(sgd, lambda it: min(1.0, it / 3))
    x, y = tiny_dataset.train.inputs, tiny_dataset.train.targets
    for t in range(1, 5):
        sgd.zero_grad()
        F.cross_entropy(model(x), y).backward()
        sgd.step()
        schedule.step()
        ours = load_state(run.checkpoint(t))
        for k, v in model.state_dict().items():
            torch.testing.assert_close(ours[k], v, rtol=0, atol=1e-6)
    # the first update ran at lr 0: the weights did not move, yet the momentum buffer holds its gradient
    assert states_equal(load_state(run.checkpoint(0)), load_state(run.checkpoint(1)))


@pytest.mark.parametrize("kill_after", [1, 2, 9, 12])
def test_resume_after_kill_is_bit_identical(tmp_path, tiny_dataset, kill_after):
    ref = train(HP, root=tmp_path / "ref", dataset=tiny_dataset, progress=False)
    root = tmp_path / "killed"
    proc = train_killed_after(HP, root, kill_after)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = Run.for_hparams(HP, root)
    assert not run.is_complete and (run.dir / "resume.safetensors").exists() == (kill_after > 1)
    resumed = train(HP, root=root, dataset=tiny_dataset, progress=False)
    assert resumed.is_complete
    for t in ref.saved_steps():
        assert states_equal(load_state(ref.checkpoint(t)), load_state(resumed.checkpoint(t))), t
    assert (ref.dir / "metrics.csv").read_text() == (resumed.dir / "metrics.csv").read_text()


def test_lock_stops_a_second_trainer(tmp_path, tiny_dataset):
    run = Run.for_hparams(HP, tmp_path)
    with run_lock(run):
        code = f"""
import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
from helpers import make_blobs
from losspath.training import train
from losspath.hparams import Hparams
from losspath.errors import LosspathError
try:
    train(Hparams(**{HP.to_dict()!r}), root={str(tmp_path)!r}, dataset=make_blobs(), progress=False)
except LosspathError as e:
    print(e); sys.exit(3)
"""
        proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": "src"},
                              capture_output=True, text=True)
    assert proc.returncode == 3 and "being trained by another process" in proc.stdout
    assert not run.checkpoint(0).exists()


def test_corrupted_checkpoint_is_one_sentence(tmp_path):
    bad = tmp_path / "step_3.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(LosspathError, match="corrupted"):
        load_state(bad)
    with pytest.raises(LosspathError, match="does not exist"):
        load_state(tmp_path / "missing.safetensors")


def test_two_process_gloo_matches_single_process(tmp_path, tiny_dataset):
    """DistributedDataParallel over 2 CPU processes, global batch 32 split 16 + 16, vs one process."""
    hp = HP.replace(model="mlp_16_16")
    single = train(hp, root=tmp_path / "one", dataset=tiny_dataset, progress=False)
    double = train(hp, root=tmp_path / "two", dataset=tiny_dataset, progress=False, nproc=2)
    assert double.saved_steps() == single.saved_steps() and double.is_complete
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [double.dir.name]
    for t in single.saved_steps():
        a, b = load_state(single.checkpoint(t)), load_state(double.checkpoint(t))
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    assert double.done()["test_error"] == pytest.approx(single.done()["test_error"], abs=0.011)


def test_perturbation_std_is_c_times_layer_std():
    from losspath.perturb import perturb_state

    g = torch.Generator().manual_seed(0)
    state = {"fc.weight": torch.randn(400, 300, generator=g) * 3.0, "fc.bias": torch.zeros(300),
             "bn.running_var": torch.ones(300)}
    out = perturb_state(state, 0.01, torch.Generator().manual_seed(1))
    noise = (out["fc.weight"].double() - state["fc.weight"].double())
    assert noise.std().item() == pytest.approx(0.01 * state["fc.weight"].double().std().item(), rel=0.01)
    assert torch.equal(out["fc.bias"], state["fc.bias"]) and torch.equal(out["bn.running_var"], state["bn.running_var"])
    again = perturb_state(state, 0.01, torch.Generator().manual_seed(1))
    assert torch.equal(again["fc.weight"], out["fc.weight"])


def test_branch_starts_from_the_perturbed_parent(tmp_path, tiny_dataset):
    from losspath.perturb import perturb_state
    from losspath.training.loop import _generator

    parent = train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)
    child_hp = HP.replace(init_from=f"{parent.dir.name}@16", perturb=0.25, perturb_seed=3, steps="1ep")
    child = train(child_hp, root=tmp_path, dataset=tiny_dataset, progress=False)
    expected = perturb_state(load_state(parent.checkpoint(16)), 0.25, _generator(3, 2))
    assert states_equal(load_state(child.checkpoint(0)), expected)
    twin = train(child_hp.replace(perturb=0.0), root=tmp_path, dataset=tiny_dataset, progress=False)
    assert states_equal(load_state(twin.checkpoint(0)), load_state(parent.checkpoint(16)))
    with pytest.raises(LosspathError, match="no checkpoint at iteration 5"):
        train(HP.replace(init_from=f"{parent.dir.name}@5it"), root=tmp_path, dataset=tiny_dataset, progress=False)


def test_bias_init_is_a_hyperparameter_of_the_run(tiny_dataset):
    hp = Hparams(dataset="blobs", model="mlp_16", bias_init="uniform")
    assert hp.run_id() != hp.replace(bias_init="zero").run_id()
    assert Hparams(dataset="blobs", model="mlp_16").non_default() == {"dataset": "blobs", "model": "mlp_16"}
    net, zero = model_for(hp, tiny_dataset), model_for(hp.replace(bias_init="zero"), tiny_dataset)
    assert (net.fc.bias != 0).all() and (zero.fc.bias == 0).all()
    assert torch.equal(net.fc.weight, zero.fc.weight)


def test_a_run_records_what_made_it_and_reuse_under_another_thread_count_says_so(tmp_path, tiny_dataset, capsys):
    from helpers import run_cli

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run = train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)
        made = run.done()["made_with"]
        assert made == dict(threads=1, torch=torch.__version__, device="cpu", processes=1, precision="fp32",
                            tf32=False, channels_last=False, compile=False)
        capsys.readouterr()
        train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)  # same setup: reused silently
        assert "notice" not in capsys.readouterr().err
        torch.set_num_threads(2)
        again = train(HP, root=tmp_path, dataset=tiny_dataset, progress=False)
        err = capsys.readouterr().err
        assert again.dir == run.dir and again.done()["made_with"] == made  # reused, not retrained
        assert err.startswith("notice: reusing run") and "1 torch thread on cpu" in err and "2 torch threads" in err
    finally:
        torch.set_num_threads(before)
    code, out, _ = run_cli(["runs", "--root", str(tmp_path)], capsys)
    assert code == 0 and f"1t cpu torch {torch.__version__}" in out
