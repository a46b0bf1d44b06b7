"""Correctness on a CUDA GPU (skipped without one): the line engine against a plain per-α loop in every BatchNorm
mode in exact float32, training on the GPU against training on the CPU, the compute options, and an iteration
that never waits for the device. `benchmarks/gpu_check.sh` runs this file first; with `--cpu-smoke` it runs it
on the CPU (LOSSPATH_TEST_DEVICE=cpu), where the tests that are about CUDA itself skip."""
import copy
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losspath.checkpoints import load_state
from losspath.compute_options import ComputeOptions
from losspath.data import Dataset, Split
from losspath.data.cifar10 import augment
from losspath.hparams import Hparams
from losspath.lines import evaluate_line
from losspath.models import build_model
from losspath.training import train

DEVICE = os.environ.get("LOSSPATH_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(DEVICE is None, reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these on one; "
                                                       "--cpu-smoke runs them on the CPU)")
CUDA_ONLY = pytest.mark.skipif(DEVICE != "cuda", reason="about CUDA itself")
SHAPE = (3, 32, 32)
ALPHAS = np.linspace(-0.25, 1.25, 5)
HP = Hparams(dataset="cifar_shaped", model="cifar_resnet_8_4", steps="2ep", batch_size=16, lr=0.05, momentum=0.9,
             checkpoints="frankle")


def distinct_endpoints(name, shape=SHAPE):
    """Two states of one network with BatchNorm statistics that differ too (fresh inits have mean 0, var 1)."""
    g = torch.Generator().manual_seed(7)
    states = []
    for seed in (0, 1):
        state = build_model(name, shape, 10, seed=seed).state_dict()
        for k, v in state.items():
            if k.endswith("running_mean"):
                state[k] = 0.1 * torch.randn(v.shape, generator=g)
            elif k.endswith("running_var"):
                state[k] = 0.5 + torch.rand(v.shape, generator=g)
        states.append(state)
    return states


def images(n, seed, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


@torch.inference_mode()
def plain_curve(model, start, end, x, y, alphas, batchnorm, train_data, batch):
    """One network per α: load θ(α), re-estimate BN statistics if asked (momentum=None over `batch`-sized training
    batches, torch's cumulative average), score in eval mode; float64 sums."""
    net = copy.deepcopy(model)
    losses, errors = [], []
    for a in alphas:
        state = {}
        for k, v in start.items():
            if not v.is_floating_point():
                state[k] = end[k]
            elif batchnorm in ("start", "end") and k.rsplit(".", 1)[-1] in ("running_mean", "running_var"):
                state[k] = (start if batchnorm == "start" else end)[k]
            else:
                state[k] = (1 - a) * v + a * end[k]
        net.load_state_dict(state)
        if batchnorm == "recompute":
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
                    m.momentum = None
            net.train()
            for i in range(0, len(train_data[0]), batch):
                net(train_data[0][i:i + batch])
        net.eval()
        loss, wrong = 0.0, 0
        for i in range(0, len(y), batch):
            logits = net(x[i:i + batch])
            loss += F.cross_entropy(logits.double(), y[i:i + batch], reduction="sum").item()
            wrong += int((logits.argmax(1) != y[i:i + batch]).sum())
        losses.append(loss / len(y))
        errors.append(wrong / len(y))
    return np.array(losses), np.array(errors)


@pytest.mark.parametrize("name, batchnorm", [("cifar_resnet_8_4", bn) for bn in ("interpolate", "recompute", "start",
                                                                                 "end")] + [("lenet_300_100", "interpolate")])
def test_engine_matches_a_plain_per_alpha_loop_in_float32(name, batchnorm):
    device = torch.device(DEVICE)
    shape = (1, 28, 28) if name == "lenet_300_100" else SHAPE
    start, end = distinct_endpoints(name, shape)
    x, y = (t.to(device) for t in images(64, 1, shape))
    train_data = tuple(t.to(device) for t in images(64, 2, shape))
    model = build_model(name, shape, 10)
    result = evaluate_line(model, start, end, (x, y), alphas=ALPHAS, batchnorm=batchnorm, batch_size=32,
                           train_data=train_data if batchnorm == "recompute" else None, device=device, progress=False)
    with ComputeOptions().numerics(device):  # the plain loop in exact float32 too (cuDNN's default is TF32)
        loss, error = plain_curve(model.to(device), {k: v.to(device) for k, v in start.items()},
                                  {k: v.to(device) for k, v in end.items()}, x, y, ALPHAS, batchnorm, train_data, 32)
    np.testing.assert_allclose(result.loss, loss, rtol=1e-4, atol=1e-5)
    assert np.abs(result.error - error).max() <= 1 / len(y)  # at most one near-tie may flip
    assert result.info["path"] == "vectorized"


def test_a_line_on_the_device_equals_the_line_on_the_cpu():
    start, end = distinct_endpoints("cifar_resnet_8_4")
    x, y = images(64, 3)
    model = build_model("cifar_resnet_8_4", SHAPE, 10)
    cpu = evaluate_line(model, start, end, (x, y), alphas=ALPHAS, device="cpu", progress=False)
    dev = evaluate_line(model, start, end, (x, y), alphas=ALPHAS, device=DEVICE, progress=False)
    np.testing.assert_allclose(dev.loss, cpu.loss, rtol=1e-4, atol=1e-5)


@CUDA_ONLY
def test_line_options_change_the_numbers_within_tolerance_on_cuda():
    start, end = distinct_endpoints("cifar_resnet_8_4")
    x, y = (t.to(DEVICE) for t in images(256, 4))
    model = build_model("cifar_resnet_8_4", SHAPE, 10)
    curves = {}
    for label, options in (("fp32", ComputeOptions()), ("tf32", ComputeOptions(tf32=True)),
                           ("bf16", ComputeOptions(bf16=True)), ("nhwc", ComputeOptions(channels_last=True))):
        curves[label] = evaluate_line(model, start, end, (x, y), alphas=ALPHAS, device=DEVICE, progress=False,
                                      options=options).loss
    relative = {k: np.abs(v - curves["fp32"]).max() / curves["fp32"].max() for k, v in curves.items()}
    assert relative["nhwc"] < 1e-4, relative
    assert relative["tf32"] < 1e-2 and 0 < relative["bf16"] < 3e-2, relative


@CUDA_ONLY
def test_tf32_is_off_unless_asked_and_the_settings_come_back():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return self.fc(x)

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    x, y = torch.randn(8, 4, device=DEVICE), torch.randint(0, 3, (8,), device=DEVICE)
    for tf32 in (False, True):
        seen.clear()
        net = Spy()
        evaluate_line(net, net.state_dict(), net.state_dict(), (x, y), points=3, device=DEVICE, progress=False,
                      options=ComputeOptions(tf32=tf32), first_layer_shortcut=False)
        assert seen and set(seen[-1:]) == {(tf32, tf32)}
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def cifar_shaped(n_train=64) -> Dataset:
    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, *SHAPE, generator=g), torch.randint(0, 10, (n,), generator=g), 10)

    return Dataset("cifar_shaped", split(n_train), split(32), augment=augment)


def max_difference(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_training_on_the_device_follows_training_on_the_cpu(tmp_path):
    data = cifar_shaped()
    cpu = train(HP, root=tmp_path / "cpu", dataset=data, progress=False, device="cpu")
    dev = train(HP, root=tmp_path / "dev", dataset=data, progress=False, device=DEVICE)
    assert max_difference(load_state(cpu.checkpoint(1)), load_state(dev.checkpoint(1))) < 1e-4  # same batches,
    assert max_difference(load_state(cpu.checkpoint(8)), load_state(dev.checkpoint(8))) < 0.05  # augmentation
    assert dev.done()["made_with"]["device"] == DEVICE.split(":")[0]


@pytest.mark.parametrize("options", [ComputeOptions(bf16=True), ComputeOptions(channels_last=True),
                                     ComputeOptions(bf16=True, channels_last=True)], ids=str)
def test_training_options_stay_close_to_float32(tmp_path, options):
    data = cifar_shaped()
    exact = train(HP, root=tmp_path / "exact", dataset=data, progress=False, device=DEVICE)
    other = train(HP, root=tmp_path / "other", dataset=data, progress=False, device=DEVICE, options=options)
    first = max_difference(load_state(exact.checkpoint(1)), load_state(other.checkpoint(1)))
    assert first < (5e-2 if options.bf16 else 1e-4)
    assert abs(other.done()["test_loss"] - exact.done()["test_loss"]) < 0.05
    assert other.done()["made_with"]["precision"] == ("bf16" if options.bf16 else "fp32")


@CUDA_ONLY
def test_training_batches_live_on_the_gpu_and_an_iteration_never_waits_for_it(tmp_path, monkeypatch):
    """The data set is copied to the GPU once; batches are gathered there. Host syncs happen only at flushes,
    evaluations and saves, so a run twice as long (same flushes, evaluations and saves) syncs as often."""
    data = cifar_shaped(n_train=16 * 48)  # 48 iterations per epoch: both runs stay in epoch 0
    devices = set()
    real_batch = Split.batch

    def spy(self, index, generator=None):
        if generator is not None:  # a training batch (evaluation passes none)
            devices.add((self.inputs.device.type, index.device.type))
        return real_batch(self, index, generator)

    monkeypatch.setattr(Split, "batch", spy)
    train(HP.replace(steps="20it", seed=1), root=tmp_path, dataset=data, progress=False, device=DEVICE)  # warm-up
    syncs = {}
    for steps in (20, 40):  # fewer than FLUSH_EVERY iterations: the same flushes
        hp = HP.replace(steps=f"{steps}it", checkpoints="0,last")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train(hp, root=tmp_path, dataset=data, progress=False, device=DEVICE)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs[steps] = [str(w.message)[:120] for w in caught if "synchroniz" in str(w.message)]
    assert devices == {("cuda", "cuda")}
    assert len(syncs[40]) == len(syncs[20]), syncs[40][:5]
