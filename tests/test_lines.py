"""The line engine against a plain reference: copy the model, load θ(α) with load_state_dict, loop over batches."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from losspath.checkpoints import save_state
from losspath.data.base import Split
from losspath.errors import LosspathError
from losspath.lines import LineResult, evaluate_line, interpolated_state, layer_depths

ALPHAS = [-0.5, 0.0, 0.3, 0.7, 1.0, 1.5]
CLASSES = 5


# ---------------------------------------------------------------- small models; LAYERS = modules with weights, in order


class MLP(nn.Sequential):
    LAYERS = ["1", "3", "5"]

    def __init__(self, bias=True):
        super().__init__(nn.Flatten(), nn.Linear(12, 16, bias=bias), nn.ReLU(), nn.Linear(16, 10, bias=bias),
                         nn.ReLU(), nn.Linear(10, CLASSES, bias=bias))


class BNMLP(nn.Sequential):
    """A ReLU pair (1, 3) whose output goes through BatchNorm."""
    LAYERS = ["1", "3", "4", "6"]

    def __init__(self):
        super().__init__(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 10), nn.BatchNorm1d(10),
                         nn.ReLU(), nn.Linear(10, CLASSES))


class TwoLayer(nn.Sequential):
    """A ReLU pair whose second layer gives the logits."""
    LAYERS = ["0", "2"]

    def __init__(self):
        super().__init__(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, CLASSES))


class ConvNet(nn.Module):
    LAYERS = ["conv1", "conv2", "fc"]

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2)
        self.fc = nn.Linear(6 * 2 * 2, CLASSES)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(x.flatten(1))


class BNNet(nn.Module):
    LAYERS = ["conv", "bn", "conv2", "bn2", "fc1", "bn3", "fc2"]

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 2)
        self.bn2 = nn.BatchNorm2d(6)
        self.fc1 = nn.Linear(6, 8)
        self.bn3 = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, CLASSES)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = F.relu(self.bn2(self.conv2(x))).mean((2, 3))
        return self.fc2(F.relu(self.bn3(self.fc1(x))))


SHAPES = {MLP: (3, 4), BNMLP: (3, 4), TwoLayer: (4,), ConvNet: (3, 5, 5), BNNet: (3, 5, 5)}
PAIRS = {MLP: "3", BNMLP: "3", TwoLayer: "2"}  # the second layer of each model's ReLU pair
AFTER_PAIRS = {MLP: "4"}  # the nn.ReLU module the pair's kernel applies (BNMLP: BatchNorm comes first)


def endpoints(model_cls, seed=0):
    """Two different random states of a model; BN statistics and counters made distinct too."""
    g = torch.Generator().manual_seed(seed)
    start = {k: v.clone() for k, v in model_cls().state_dict().items()}
    end = {}
    for k, v in start.items():
        if not v.is_floating_point():
            start[k] = torch.tensor(3)
            end[k] = torch.tensor(11)
        elif k.endswith("running_var"):
            start[k] = 0.5 + torch.rand(v.shape, generator=g)
            end[k] = 0.5 + torch.rand(v.shape, generator=g)
        else:
            start[k] = v + 0.1 * torch.randn(v.shape, generator=g)
            end[k] = 1.5 * torch.randn(v.shape, generator=g) / math.sqrt(max(1, v[0].numel()))
    return start, end


def data(model_cls, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + SHAPES[model_cls], generator=g), torch.randint(0, CLASSES, (n,), generator=g)


# ------------------------------------------------------------- the plain reference, written independently


def reference_state(model_cls, start, end, alpha, scheme, hold, bn_mode):
    depth = {name: i + 1 for i, name in enumerate(model_cls.LAYERS)}
    held = start if hold == "start" else end
    out = {}
    for k in start:
        module, last = k.rsplit(".", 1)
        line = (1 - alpha) * start[k] + alpha * end[k] if start[k].is_floating_point() else None
        if not start[k].is_floating_point():
            out[k] = end[k]
        elif last in ("running_mean", "running_var") and bn_mode in ("start", "end"):
            out[k] = start[k] if bn_mode == "start" else end[k]
        elif scheme == "all":
            out[k] = line
        elif scheme == "weights":
            out[k] = held[k] if last == "bias" else line
        elif scheme == "biases":
            out[k] = line if last == "bias" else held[k]
        elif scheme == "homogeneous":
            c = alpha ** depth[module] if last == "bias" else alpha
            out[k] = (1 - c) * start[k] + c * end[k]
        else:
            out[k] = line if any(k.startswith(p + ".") for p in scheme) else held[k]
    return out


def reference_curve(model_cls, start, end, x, y, alphas, scheme="all", hold="end", bn_mode="interpolate",
                    train=None, bn_batch=128, bn_batches=None):
    model = model_cls()
    losses, errors = [], []
    for alpha in alphas:
        net = copy.deepcopy(model)
        net.load_state_dict(reference_state(model_cls, start, end, alpha, scheme, hold, bn_mode))
        if bn_mode == "recompute":
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = None
                    m.reset_running_stats()
            net.train()
            with torch.no_grad():
                for i in range(0, len(train[0]), bn_batch):
                    if bn_batches is not None and i // bn_batch >= bn_batches:
                        break
                    net(train[0][i : i + bn_batch])
        net.eval()
        total, wrong = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(y), 32):
                logits = net(x[i : i + 32])
                total += F.cross_entropy(logits, y[i : i + 32], reduction="sum").item()
                wrong += int((logits.argmax(1) != y[i : i + 32]).sum())
        losses.append(total / len(y))
        errors.append(wrong / len(y))
    return np.array(losses), np.array(errors)


SCHEMES = ["all", "weights", "biases", "homogeneous"]
CASES = [(MLP, s, "interpolate") for s in SCHEMES + [["3"]]]
CASES += [(ConvNet, s, "interpolate") for s in SCHEMES + [["conv2", "fc"]]]
CASES += [(BNNet, s, bn) for s in SCHEMES + [["bn2", "fc1"]] for bn in ("interpolate", "recompute", "start", "end")]
CASES += [(BNMLP, s, bn) for s in ("all", "homogeneous", ["4"]) for bn in ("interpolate", "recompute", "end")]
CASES += [(TwoLayer, s, "interpolate") for s in SCHEMES + [["2"]]]


@pytest.mark.parametrize("shortcut", ["relu_pair", "first_layer", "none"])
@pytest.mark.parametrize("model_cls,scheme,bn_mode", CASES, ids=lambda v: v if isinstance(v, str) else
                         (v.__name__ if isinstance(v, type) else "+".join(v)))
def test_engine_matches_plain_reference(model_cls, scheme, bn_mode, shortcut):
    start, end = endpoints(model_cls)
    x, y = data(model_cls, 70, seed=1)
    train = data(model_cls, 90, seed=2)
    hold = "start" if scheme == "biases" else "end"
    result = evaluate_line(model_cls(), start, end, (x, y), alphas=ALPHAS, scheme=scheme, batchnorm=bn_mode,
                           train_data=train if bn_mode == "recompute" else None, hold=hold, progress=False,
                           batch_size=32, first_layer_shortcut=shortcut != "none",
                           relu_shortcut=shortcut == "relu_pair")
    loss, error = reference_curve(model_cls, start, end, x, y, ALPHAS, scheme, hold, bn_mode, train, bn_batch=32)
    np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result.error, error)
    assert result.class_counts.shape == (len(ALPHAS), CLASSES)
    assert (result.class_counts.sum(1) == len(y)).all()
    assert (result.info["first_layer"] is not None) == (shortcut != "none")
    assert result.info["relu_pair"] == (PAIRS.get(model_cls) if shortcut == "relu_pair" else None)
    assert result.info["relu_after_pair"] == (AFTER_PAIRS.get(model_cls) if shortcut == "relu_pair" else None)


def test_first_layer_found_through_flatten_and_not_after_transform():
    assert evaluate_line(MLP(), *endpoints(MLP), data(MLP, 8, 0), points=2, progress=False).info["first_layer"] == "1"

    class Scaled(MLP):
        def forward(self, x):
            return super().forward(2 * x)

    result = evaluate_line(Scaled(), *endpoints(MLP), data(MLP, 8, 0), points=2, progress=False)
    assert result.info["first_layer"] is None


def test_chunking_and_batching_do_not_change_the_result(monkeypatch):
    from losspath.lines import engine

    start, end = endpoints(BNNet)
    x, y = data(BNNet, 70, 1)
    train = data(BNNet, 90, 2)
    kwargs = dict(alphas=np.linspace(-0.2, 1.2, 15), batchnorm="recompute", train_data=train, progress=False)
    wide = evaluate_line(BNNet(), start, end, (x, y), **kwargs)
    narrow = evaluate_line(BNNet(), start, end, (x, y), max_memory=20_000, **kwargs)
    monkeypatch.setattr(engine, "WORKING_SET", 50_000)
    split = evaluate_line(BNNet(), start, end, (x, y), batch_size=32, **kwargs)
    assert wide.info["chunk"] == 15 and narrow.info["chunk"] < 15
    assert split.info["chunk"] == 15 and 1 < split.info["per_call"] < 15
    loss, _ = reference_curve(BNNet, start, end, x, y, kwargs["alphas"], bn_mode="recompute", train=train,
                              bn_batch=32)
    np.testing.assert_allclose(split.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(narrow.loss, wide.loss, rtol=1e-6)
    np.testing.assert_array_equal(narrow.class_counts, wide.class_counts)


def test_recompute_respects_bn_batches():
    start, end = endpoints(BNNet)
    x, y = data(BNNet, 40, 1)
    train = data(BNNet, 90, 2)
    before = {k: v.clone() for k, v in end.items()}
    result = evaluate_line(BNNet(), start, end, (x, y), alphas=[0.0, 0.5, 1.0], batchnorm="recompute",
                           train_data=train, batch_size=20, bn_batches=2, progress=False)
    assert all(torch.equal(before[k], end[k]) for k in end)  # the caller's tensors are never written
    loss, _ = reference_curve(BNNet, start, end, x, y, [0.0, 0.5, 1.0], bn_mode="recompute", train=train,
                              bn_batch=20, bn_batches=2)
    np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-5)


def test_recompute_on_a_network_without_batchnorm_is_plain_interpolation():
    start, end = endpoints(MLP)
    x, y = data(MLP, 40, 1)
    plain = evaluate_line(MLP(), start, end, (x, y), points=5, progress=False)
    recomputed = evaluate_line(MLP(), start, end, (x, y), points=5, batchnorm="recompute", train_data=data(MLP, 30, 2),
                               progress=False)
    np.testing.assert_array_equal(recomputed.loss, plain.loss)
    np.testing.assert_array_equal(recomputed.error, plain.error)


@pytest.mark.parametrize("model_cls", [MLP, ConvNet, BNNet])
def test_endpoints_equal_direct_evaluation(model_cls):
    start, end = endpoints(model_cls)
    x, y = data(model_cls, 50, 3)
    result = evaluate_line(model_cls(), start, end, (x, y), points=7, progress=False)
    for i, state in ((0, start), (-1, end)):
        net = model_cls()
        net.load_state_dict(state)
        net.eval()
        with torch.no_grad():
            logits = net(x)
        assert result.loss[i] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
        assert result.error[i] == pytest.approx((logits.argmax(1) != y).float().mean().item())
        np.testing.assert_array_equal(result.class_counts[i], torch.bincount(logits.argmax(1), minlength=CLASSES))


def test_interpolated_state_is_exact_at_the_endpoints():
    start, end = endpoints(BNNet)
    assert all(torch.equal(interpolated_state(start, end, 0.0)[k], start[k]) for k in start if "num_batches" not in k)
    assert all(torch.equal(interpolated_state(start, end, 1.0)[k], end[k]) for k in end)
    held = interpolated_state(start, end, 0.5, "weights", hold="start")
    assert torch.equal(held["fc1.bias"], start["fc1.bias"]) and held["bn.num_batches_tracked"] == 11


def test_softmax_regression_matches_closed_form():
    g = torch.Generator().manual_seed(4)
    model = nn.Linear(6, 4)
    start = {"weight": torch.randn(4, 6, generator=g), "bias": torch.randn(4, generator=g)}
    end = {"weight": 2 * torch.randn(4, 6, generator=g), "bias": torch.randn(4, generator=g)}
    x, y = torch.randn(300, 6, generator=g), torch.randint(0, 4, (300,), generator=g)
    alphas = [-0.5, 0.0, 0.25, 1.0, 1.5]
    result = evaluate_line(model, start, end, (x, y), alphas=alphas, progress=False)
    X, Y = x.double().numpy(), y.numpy()
    for i, a in enumerate(alphas):
        W = (1 - a) * start["weight"].double().numpy() + a * end["weight"].double().numpy()
        b = (1 - a) * start["bias"].double().numpy() + a * end["bias"].double().numpy()
        z = X @ W.T + b
        log_softmax = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
        assert result.loss[i] == pytest.approx(-log_softmax[np.arange(300), Y].mean(), rel=1e-5)
        assert result.error[i] == pytest.approx((z.argmax(1) != Y).mean())
        np.testing.assert_array_equal(result.class_counts[i], np.bincount(z.argmax(1), minlength=4))


def test_homogeneous_equals_plain_interpolation_without_biases():
    start, end = endpoints(lambda: MLP(bias=False))
    x, y = data(MLP, 60, 5)
    kwargs = dict(alphas=ALPHAS, progress=False)
    plain = evaluate_line(MLP(bias=False), start, end, (x, y), **kwargs)
    homogeneous = evaluate_line(MLP(bias=False), start, end, (x, y), scheme="homogeneous", **kwargs)
    np.testing.assert_array_equal(homogeneous.loss, plain.loss)


def test_homogeneous_scales_logits_by_alpha_to_the_depth():
    _, end = endpoints(MLP)
    zero = {k: torch.zeros_like(v) for k, v in end.items()}
    x, y = data(MLP, 60, 6)
    model = MLP()
    depths = layer_depths(model, x)
    assert depths == {"1": 1, "3": 2, "5": 3}
    model.load_state_dict(end)
    with torch.no_grad():
        end_logits = model(x)
    alphas = [0.25, 0.5, 0.9, 1.0]
    result = evaluate_line(MLP(), zero, end, (x, y), alphas=alphas, scheme="homogeneous", progress=False)
    for i, a in enumerate(alphas):
        model.load_state_dict(interpolated_state(zero, end, a, "homogeneous", depths=depths))
        with torch.no_grad():
            logits = model(x)
        torch.testing.assert_close(logits, a**3 * end_logits, rtol=1e-5, atol=1e-6)
        assert result.loss[i] == pytest.approx(F.cross_entropy(a**3 * end_logits, y).item(), rel=1e-5)
        np.testing.assert_array_equal(result.class_counts[i], torch.bincount(end_logits.argmax(1), minlength=CLASSES))


def test_tensor_pair_dataloader_and_split_agree():
    start, end = endpoints(ConvNet)
    x, y = data(ConvNet, 45, 7)
    pair = evaluate_line(ConvNet(), start, end, (x, y), points=5, progress=False)
    loader = evaluate_line(ConvNet(), start, end, DataLoader(TensorDataset(x, y), batch_size=16), points=5,
                           progress=False)
    split = evaluate_line(ConvNet(), start, end, Split(x, y, CLASSES), points=5, batch_size=10, progress=False)
    for other in (loader, split):
        np.testing.assert_allclose(other.loss, pair.loss, rtol=1e-6)
        np.testing.assert_array_equal(other.class_counts, pair.class_counts)
        assert other.num_examples == 45


def test_checkpoint_paths_and_run_references(tmp_path, monkeypatch):
    start, end = endpoints(MLP)
    x, y = data(MLP, 30, 8)
    save_state(tmp_path / "start.safetensors", start)
    torch.save(end, tmp_path / "end.pt")
    direct = evaluate_line(MLP(), start, end, (x, y), points=4, progress=False)
    from_files = evaluate_line(MLP(), tmp_path / "start.safetensors", str(tmp_path / "end.pt"), (x, y), points=4,
                               progress=False)
    np.testing.assert_array_equal(from_files.loss, direct.loss)

    store = pytest.importorskip("losspath.store")
    seen = []

    def fake_checkpoint_path(run_dir, step):
        seen.append((str(run_dir), step))
        return tmp_path / ("start.safetensors" if step == 0 else "end.pt")

    monkeypatch.setattr(store, "checkpoint_path", fake_checkpoint_path)
    from_runs = evaluate_line(MLP(), "runs/abc@0", ("runs/abc", "last"), (x, y), points=4, progress=False)
    np.testing.assert_array_equal(from_runs.loss, direct.loss)
    assert seen == [("runs/abc", 0), ("runs/abc", "last")]


def test_mismatched_endpoints_give_one_error_listing_all_differences():
    start, end = endpoints(MLP)
    del start["3.bias"]
    end["extra.weight"] = torch.zeros(2)
    end["1.weight"] = torch.zeros(16, 13)
    with pytest.raises(LosspathError) as info:
        evaluate_line(MLP(), start, end, data(MLP, 8, 0), points=3, progress=False)
    message = str(info.value)
    assert "3.bias" in message and "extra.weight" in message and "1.weight" in message and "(16, 13)" in message


def test_endpoints_checked_against_the_model():
    start, end = endpoints(MLP)
    with pytest.raises(LosspathError, match="5.bias"):
        evaluate_line(MLP(bias=False), start, end, data(MLP, 8, 0), points=3, progress=False)


@pytest.mark.parametrize("which,value", [("start", math.nan), ("end", math.inf)])
def test_non_finite_weights_are_rejected(which, value):
    start, end = endpoints(MLP)
    (start if which == "start" else end)["3.weight"][0, 0] = value
    with pytest.raises(LosspathError, match=f"{which}.*3.weight"):
        evaluate_line(MLP(), start, end, data(MLP, 8, 0), points=3, progress=False)


def test_overflowing_logits_give_inf_loss_not_a_crash():
    start, end = endpoints(MLP)
    end = {k: 1e30 * v for k, v in start.items()}
    x, y = data(MLP, 40, 9)
    result = evaluate_line(MLP(), start, end, (x, y), points=5, progress=False)
    assert np.isfinite(result.loss[0]) and np.isinf(result.loss[-1])
    assert ((result.error >= 0) & (result.error <= 1)).all()
    assert (result.class_counts.sum(1) == 40).all()
    assert result.summary()["loss_max_increase"] == math.inf


@pytest.mark.parametrize("kwargs,match", [
    (dict(batchnorm="recompute"), "train_data"),
    (dict(scheme="some"), "scheme"),
    (dict(scheme=["nonexistent"]), "nonexistent"),
    (dict(batchnorm="freeze"), "batchnorm"),
    (dict(hold="middle"), "hold"),
    (dict(points=0), "points"),
])
def test_user_mistakes_are_losspath_errors(kwargs, match):
    with pytest.raises(LosspathError, match=match):
        evaluate_line(MLP(), *endpoints(MLP), data(MLP, 8, 0), progress=False, **kwargs)


def test_models_vmap_cannot_run_fall_back_to_a_loop():
    class DataDependent(MLP):
        def forward(self, x):
            out = super().forward(x)
            return out if out.sum() > -1e9 else -out  # data-dependent control flow

    start, end = endpoints(MLP)
    x, y = data(MLP, 30, 10)
    with pytest.warns(UserWarning, match="vmap"):
        result = evaluate_line(DataDependent(), start, end, (x, y), alphas=ALPHAS, progress=False)
    loss, _ = reference_curve(MLP, start, end, x, y, ALPHAS)
    np.testing.assert_allclose(result.loss, loss, rtol=1e-5)
    assert not result.info["vectorized"]


def test_result_frame_and_summary():
    result = evaluate_line(MLP(), *endpoints(MLP), data(MLP, 20, 11), points=6, progress=False)
    assert isinstance(result, LineResult)
    frame = result.to_frame()
    assert list(frame.columns) == ["alpha", "loss", "error", "undefined", "undefined_reason"] and len(frame) == 6
    assert not frame.undefined.any() and (frame.undefined_reason == "").all()
    summary = result.summary()
    assert {"loss_max_increase", "loss_barrier", "loss_lucas_delta", "loss_monotone", "loss_plateau_end",
            "error_max_increase", "relative_distance"} <= set(summary)


def test_nothing_moves_when_the_scheme_holds_everything():
    start, end = endpoints(lambda: MLP(bias=False))
    x, y = data(MLP, 30, 12)
    result = evaluate_line(MLP(bias=False), start, end, (x, y), points=4, scheme="biases", hold="start",
                           progress=False)
    net = MLP(bias=False)
    net.load_state_dict(start)
    with torch.no_grad():
        loss = F.cross_entropy(net(x), y).item()
    np.testing.assert_allclose(result.loss, np.full(4, loss), rtol=1e-6)
