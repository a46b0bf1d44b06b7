"""The compute options (TF32, bf16 autocast, channels_last, torch.compile) on the CPU: the default path is the one
from before they existed, each option really reaches the computation, and options that make no sense are refused.
The same checks on CUDA are in test_gpu.py."""
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from losspath.checkpoints import load_state
from losspath.compute_options import ComputeOptions
from losspath.data import Dataset, Split
from losspath.data.cifar10 import augment
from losspath.errors import LosspathError, TrainingDiverged
from losspath.hparams import Hparams
from losspath.lines import evaluate_line
from losspath.models import build_model
from losspath.training import epoch_order, model_for, train
from losspath.training.loop import _generator
from helpers import make_blobs, run_cli

MLP = Hparams(dataset="blobs", model="mlp_16", steps="3ep", batch_size=32, lr=0.05, momentum=0.9,
              weight_decay=1e-3, milestones="2ep", checkpoints="frankle")
RESNET = Hparams(dataset="cifar_shaped", model="cifar_resnet_8_4", steps="2ep", batch_size=16, lr=0.05, momentum=0.9,
                 checkpoints="frankle")
OFF = ComputeOptions(tf32=False, bf16=False, channels_last=False, compile=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cifar_shaped() -> Dataset:
    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g), 10)

    return Dataset("cifar_shaped", split(64), split(32), augment=augment)


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def max_difference(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_default_training_is_the_plain_loop_bit_for_bit_and_the_options_off_change_nothing(tmp_path):
    data = cifar_shaped()
    run = train(RESNET, root=tmp_path / "default", dataset=data, progress=False)
    off = train(RESNET, root=tmp_path / "off", dataset=data, progress=False, options=OFF)
    for t in run.saved_steps():
        assert states_equal(load_state(run.checkpoint(t)), load_state(off.checkpoint(t))), t
    assert (run.dir / "metrics.csv").read_text() == (off.dir / "metrics.csv").read_text()
    # the loop as it was written before the options: SGD on index-sliced batches, augmented on the host
    model = model_for(RESNET, data)
    sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for t in range(8):
        epoch, pos = divmod(t, 4)
        index = epoch_order(64, RESNET.order_seed, epoch)[pos * 16:(pos + 1) * 16]
        x = data.augment(data.train.inputs[index], _generator(RESNET.order_seed, epoch, pos, 1, 0))
        sgd.zero_grad(set_to_none=True)
        (F.cross_entropy(model(x), data.train.targets[index], reduction="sum") * (1 / 16)).backward()
        sgd.step()
    assert states_equal(load_state(run.checkpoint(8)), model.state_dict())


def test_default_training_gives_the_numbers_from_before_the_options():
    # captured before compute_options existed (torch 2.13, 1 thread); the tolerance allows another CPU's last
    # bits, not bf16 (which moves the MLP's test loss by 3e-4, see test below) or channels_last
    run = train(MLP, dataset=make_blobs(), progress=False)
    assert run.done()["test_loss"] == pytest.approx(0.32231293118797993, rel=1e-6)
    assert run.done()["train_batches_loss"] == pytest.approx(0.20391171372362546, rel=1e-6)
    assert run.done()["train_batches_error"] == pytest.approx(0.0714286, abs=1e-6)  # its 7 batches: 6 of 32, 1 of 8
    run = train(RESNET, dataset=cifar_shaped(), progress=False)
    assert run.done()["test_loss"] == pytest.approx(2.338682851501572, rel=1e-6)


def test_bf16_training_changes_the_numbers_a_little_and_is_recorded(tmp_path, capsys):
    data = cifar_shaped()
    fp32 = train(RESNET, root=tmp_path / "fp32", dataset=data, progress=False)
    bf16 = train(RESNET, root=tmp_path / "bf16", dataset=data, progress=False, options=ComputeOptions(bf16=True))
    a, b = load_state(fp32.checkpoint(8)), load_state(bf16.checkpoint(8))
    assert all(b[k].dtype == a[k].dtype for k in a)  # autocast: the weights stay float32
    assert 1e-4 < max_difference(a, b) < 0.1
    assert abs(bf16.done()["test_loss"] - fp32.done()["test_loss"]) < 0.01
    assert bf16.done()["made_with"]["precision"] == "bf16" and fp32.done()["made_with"]["precision"] == "fp32"
    capsys.readouterr()
    train(RESNET, root=tmp_path / "bf16", dataset=data, progress=False)  # reused by a float32 call
    err = capsys.readouterr().err
    assert err.startswith("notice: reusing run") and "bf16 autocast" in err
    code, out, _ = run_cli(["runs", "--root", str(tmp_path / "bf16")], capsys)
    assert code == 0 and "bf16 autocast" in out


def test_channels_last_training_equals_the_default_within_rounding(tmp_path):
    data = cifar_shaped()
    plain = train(RESNET, root=tmp_path / "a", dataset=data, progress=False)
    nhwc = train(RESNET, root=tmp_path / "b", dataset=data, progress=False, options=ComputeOptions(channels_last=True))
    first = max_difference(load_state(plain.checkpoint(1)), load_state(nhwc.checkpoint(1)))
    assert first < 1e-5  # one step: rounding only (8 steps of BatchNorm on random data amplify it to ~3e-3)
    assert not states_equal(load_state(plain.checkpoint(8)), load_state(nhwc.checkpoint(8)))  # another kernel ran
    assert nhwc.done()["made_with"]["channels_last"] is True
    assert all(v.is_contiguous() for v in load_state(nhwc.checkpoint(8)).values())


def test_compile_option_compiles_the_training_step(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda net: compiled.append(net) or net)
    run = train(MLP, root=tmp_path, dataset=make_blobs(), progress=False, options=ComputeOptions(compile=True))
    assert len(compiled) == 1 and isinstance(compiled[0], torch.nn.Module)
    assert run.done()["made_with"]["compile"] is True


def test_compile_training_equals_the_default_within_rounding(tmp_path, request):
    if not request.config.getoption("--slow", default=False):
        pytest.skip("torch.compile's first compilation takes ~30 s on 2 shared cores (cold inductor cache); "
                    "run with --slow")
    data = make_blobs()
    plain = train(MLP, root=tmp_path / "a", dataset=data, progress=False)
    t0 = time.perf_counter()
    compiled = train(MLP, root=tmp_path / "b", dataset=data, progress=False, options=ComputeOptions(compile=True))
    seconds = time.perf_counter() - t0
    for t in plain.saved_steps():
        torch.testing.assert_close(load_state(compiled.checkpoint(t)), load_state(plain.checkpoint(t)), rtol=1e-4,
                                   atol=1e-5)
    assert compiled.done()["made_with"]["compile"] is True
    print(f"torch.compile training of mlp_16: {seconds:.1f} s")


def test_the_loop_still_stops_at_the_first_diverging_iteration(tmp_path):
    # batch losses are read from the device in bulk; the error must still name the first non-finite iteration,
    # and no checkpoint after it may be written
    data = make_blobs()
    hp = MLP.replace(lr=1e5, momentum=0.0, weight_decay=0.0, milestones="")
    messages = []
    for checkpoints in ("every:1it", "0,last"):
        with pytest.raises(TrainingDiverged) as e:
            train(hp.replace(checkpoints=checkpoints), root=tmp_path / checkpoints.replace(":", ""), dataset=data,
                  progress=False)
        messages.append(str(e.value))
    assert messages[0] == messages[1] and "at iteration" in messages[0]
    bad = int(messages[0].split("at iteration ")[1].split(";")[0])
    sparse = next((tmp_path / "0,last").glob("train_*"))
    assert sorted(p.name for p in sparse.glob("step_*")) == ["step_0.safetensors"] and bad > 0


@pytest.mark.parametrize("args, sentence", [
    (["--tf32"], "--tf32 changes only CUDA matmuls and convolutions"),
    (["--channels-last"], "--channels-last changes only networks with 2-D convolutions; mlp_16 has none."),
])
def test_options_that_make_no_sense_are_one_sentence(tmp_path, capsys, args, sentence):
    code, _, err = run_cli(["train", "--data", "digits", "--model", "mlp_16", "--steps", "1it", "-q",
                            "--root", str(tmp_path), *args], capsys)
    assert code == 2 and sentence in err and err.count("\n") == 1
    assert not list(tmp_path.glob("train_*"))  # refused before anything was written


def test_line_options_that_make_no_sense_are_refused():
    net = build_model("cifar_resnet_8_4", (3, 32, 32), 10, seed=0)
    data = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    lenet = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    for model, options, sentence in ((net, ComputeOptions(tf32=True), "--tf32 changes only CUDA"),
                                     (net, ComputeOptions(channels_last=True), "4-D inputs channels_last there"),
                                     (lenet, ComputeOptions(channels_last=True), "has none"),
                                     (net, ComputeOptions(compile=True), "training only")):
        x = data if model is net else (torch.randn(8, 1, 28, 28), data[1])
        with pytest.raises(LosspathError, match=sentence):
            evaluate_line(model, model.state_dict(), model.state_dict(), x, points=3, progress=False,
                          options=options)


def line_pair(name, shape, n=256):
    g = torch.Generator().manual_seed(3)
    start, end = build_model(name, shape, 10, seed=0), build_model(name, shape, 10, seed=1)
    data = (torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g))
    return start, end, data


@pytest.mark.parametrize("name, shape, batchnorm", [("lenet_300_100", (1, 28, 28), "interpolate"),
                                                    ("cifar_resnet_8_4", (3, 32, 32), "interpolate"),
                                                    ("cifar_resnet_8_4", (3, 32, 32), "recompute")])
def test_bf16_line_on_the_cpu_differs_from_float32_within_a_stated_tolerance(name, shape, batchnorm):
    start, end, data = line_pair(name, shape)
    kw = dict(points=11, batchnorm=batchnorm, train_data=data if batchnorm == "recompute" else None, progress=False)
    fp32 = evaluate_line(start, start.state_dict(), end.state_dict(), data, **kw)
    bf16 = evaluate_line(start, start.state_dict(), end.state_dict(), data, options=ComputeOptions(bf16=True), **kw)
    difference = np.abs(bf16.loss - fp32.loss)
    assert difference.max() > 0  # the option reached the forward passes
    assert (difference / fp32.loss).max() < 5e-3  # measured: ≤ 5e-4 (LeNet), ≤ 1e-4 (ResNet-8)
    assert np.abs(bf16.error - fp32.error).max() <= 0.02
    assert bf16.info["compute"]["precision"] == "bf16" and fp32.info["compute"]["precision"] == "fp32"
    assert bf16.info["path"] == "vectorized" and bf16.info["relu_pair"] is None


def test_line_cli_takes_the_options(tmp_path, capsys):
    run = train(MLP.replace(dataset="digits", steps="2it", checkpoints="0,last"), root=tmp_path, progress=False)
    code, _, err = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "--points", "3", "-q", "--tf32"], capsys)
    assert code == 2 and "--tf32 changes only CUDA" in err
    curves = {}
    for name, flag in (("fp32", []), ("bf16", ["--bf16"])):
        csv = tmp_path / f"{name}.csv"
        code, _, _ = run_cli(["line", f"{run.dir}@0", f"{run.dir}@last", "--points", "5", "-q", "--out", str(csv),
                              *flag], capsys)
        assert code == 0
        curves[name] = pd.read_csv(csv)["loss"].to_numpy()
    assert 0 < np.abs(curves["bf16"] - curves["fp32"]).max() < 0.01 * curves["fp32"].max()
